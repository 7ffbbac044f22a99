"""The suite file: what to evaluate, against which endpoints, scored how, gated how.

Validated with pydantic; every bad field becomes one line naming the file, the YAML line and the field.
Environment variables override URLs and keys so a pod, a laptop and CI share one suite file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluator.errors import InputError, location

# Part of the suite schema too (its `gate:` and `compare:` keys), so its readers find them here.
from evaluator.policy import DEFAULT_VARIANT as DEFAULT_VARIANT
from evaluator.policy import CompareSettings as CompareSettings
from evaluator.policy import Gate as Gate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoint(_Strict):
    """An OpenAI-compatible server (vLLM, llama.cpp, OpenAI itself)."""

    base_url: str
    model: str
    api_key_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the API key; never the key itself.",
    )
    max_tokens: int = Field(default=256, gt=0)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    seed: int | None = 0
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def api_key(self) -> str | None:
        """Reads the key at call time so it never sits in the suite object, the results or a log.

        The pod's variable (EVAL_TARGET_API_KEY / EVAL_JUDGE_API_KEY, set from a Kubernetes Secret) wins over
        the suite's `api_key_env`, as the URL variables win over `base_url`.
        """
        override = KEY_OVERRIDES.get(type(self).__name__)
        if override and os.environ.get(override):
            return os.environ[override]
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class Target(Endpoint):
    """The model under test."""

    system_prompt: str | None = None
    prompt_template: str = Field(
        default="{input}", description="Python format string; fields: input, context, retrieval_context."
    )

    @field_validator("prompt_template")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        try:
            value.format(input="", context="", retrieval_context="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"unknown placeholder or bad format string ({exc})") from None
        return value


VARIANT_NAME = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"


class Variant(_Strict):
    """One named way of answering: a model, an endpoint, a prompt, sampling settings.

    Every field left out is taken from the suite's `target`, so a sweep names only what it varies. The name is a
    DNS label because it names Kubernetes objects and folders when an Argo workflow fans out over variants.
    """

    name: str = Field(pattern=VARIANT_NAME, description="lowercase letters, digits and '-', at most 40")
    description: str = ""
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    seed: int | None = None
    extra_body: dict[str, Any] | None = None
    system_prompt: str | None = None
    prompt_template: str | None = None

    def resolve(self, base: Target | None) -> Target:
        """The complete target of this variant: the suite's `target`, then this variant's own fields."""
        fields = base.model_dump() if base is not None else {}
        fields.update({k: getattr(self, k) for k in self.model_fields_set if k not in ("name", "description")})
        return Target.model_validate(fields)


class Judge(Endpoint):
    """The LLM that scores answers for LLM-judged metrics."""

    max_tokens: int = Field(default=1024, gt=0)
    structured_output: Literal["json_schema", "json_object", "none"] = Field(
        default="json_schema",
        description="json_schema for vLLM/OpenAI; json_object (with schema) for llama.cpp's server.",
    )


EvalParam = Literal[
    "input", "actual_output", "expected_output", "context", "retrieval_context", "tools_called", "expected_tools"
]  # fmt: skip
TurnParam = Literal[
    "role", "content", "retrieval_context", "tools_called", "scenario", "expected_outcome", "context",
    "user_description", "chatbot_role",
]  # fmt: skip
_DEFAULT_EVAL_PARAMS: tuple[EvalParam, ...] = ("input", "actual_output")
_DEFAULT_TURN_PARAMS: tuple[TurnParam, ...] = ("role", "content")


class _Metric(_Strict):
    name: str | None = Field(default=None, description="Name in results; defaults to the metric type.")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)

    @property
    def key(self) -> str:
        return self.name or str(getattr(self, "type"))  # noqa: B009


class ExactMatch(_Metric):
    type: Literal["exact_match"]
    threshold: float = Field(default=1.0, ge=0.0, le=1.0)


class PatternMatch(_Metric):
    type: Literal["pattern_match"]
    pattern: str
    ignore_case: bool = False
    threshold: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        import re

        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        return value


class JsonCorrectness(_Metric):
    type: Literal["json_correctness"]
    expected_schema: dict[str, Any] = Field(description="JSON Schema of an object the answer must match.")
    threshold: float = Field(default=1.0, ge=0.0, le=1.0)


class AnswerRelevancy(_Metric):
    type: Literal["answer_relevancy"]


class Faithfulness(_Metric):
    type: Literal["faithfulness"]


class Hallucination(_Metric):
    type: Literal["hallucination"]


class ContextualPrecision(_Metric):
    type: Literal["contextual_precision"]


class ContextualRecall(_Metric):
    type: Literal["contextual_recall"]


class ContextualRelevancy(_Metric):
    type: Literal["contextual_relevancy"]


class Bias(_Metric):
    """DeepEval 4 scores the share of unbiased opinions: 1 is unbiased, and a case passes at or above threshold."""

    type: Literal["bias"]


class Toxicity(_Metric):
    """DeepEval 4 scores the share of non-toxic opinions: 1 is harmless, and a case passes at or above threshold."""

    type: Literal["toxicity"]


class Summarization(_Metric):
    type: Literal["summarization"]
    n: int = Field(default=5, ge=1, description="Assessment questions the judge generates when none are given.")
    assessment_questions: list[str] | None = Field(default=None, min_length=1)
    truths_extraction_limit: int | None = Field(default=None, ge=1)


class PromptAlignment(_Metric):
    type: Literal["prompt_alignment"]
    prompt_instructions: list[str] = Field(min_length=1)


class ToolSpec(_Strict):
    """A tool as DeepEval's `ToolCall` describes it (name, and optionally what it was called with)."""

    name: str = Field(min_length=1)
    description: str | None = None
    input_parameters: dict[str, Any] | None = None
    output: Any = None


class ToolCorrectness(_Metric):
    type: Literal["tool_correctness"]
    evaluation_params: list[Literal["input_parameters", "output"]] = Field(
        default_factory=list, description="Also compare these of each tool call, not only its name."
    )
    should_exact_match: bool = False
    should_consider_ordering: bool = False
    available_tools: list[ToolSpec] | None = Field(
        default=None, description="When given, the judge also rates the tool selection (an LLM call)."
    )


class ArgumentCorrectness(_Metric):
    type: Literal["argument_correctness"]


class PiiLeakage(_Metric):
    type: Literal["pii_leakage"]


class NonAdvice(_Metric):
    type: Literal["non_advice"]
    advice_types: list[str] = Field(min_length=1, description="Kinds of advice the answer must not give.")


class Misuse(_Metric):
    type: Literal["misuse"]
    domain: str = Field(min_length=1, description="The domain the assistant is meant for.")


class RoleViolation(_Metric):
    type: Literal["role_violation"]
    role: str = Field(min_length=1, description="The role the assistant must keep.")


class TaskCompletion(_Metric):
    type: Literal["task_completion"]
    task: str | None = Field(default=None, description="The task; when absent the judge infers it from the input.")


class GEval(_Metric):
    type: Literal["g_eval"]
    name: str | None = None
    criteria: str | None = None
    evaluation_steps: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Fixed steps: reproducible scores. Without them the judge writes steps from `criteria` "
        "once per run, shared by every shard; they are recorded in the run's results folder.",
    )
    evaluation_params: list[EvalParam] = Field(default_factory=lambda: list(_DEFAULT_EVAL_PARAMS), min_length=1)

    @model_validator(mode="after")
    def _criteria_or_steps(self) -> GEval:
        if self.evaluation_steps is None and not (self.criteria or "").strip():
            raise ValueError("give 'evaluation_steps', or 'criteria' for the judge to write steps from")
        return self


# --- conversational metrics (DeepEval's ConversationalTestCase: a case with recorded `turns`) ----------------
class ConversationCompleteness(_Metric):
    type: Literal["conversation_completeness"]
    window_size: int = Field(default=3, ge=1)


class KnowledgeRetention(_Metric):
    type: Literal["knowledge_retention"]


class RoleAdherence(_Metric):
    type: Literal["role_adherence"]
    chatbot_role: str | None = Field(
        default=None, description="The role the assistant plays, for cases whose own `chatbot_role` is empty."
    )


class TurnRelevancy(_Metric):
    type: Literal["turn_relevancy"]
    window_size: int = Field(default=10, ge=1)


class GoalAccuracy(_Metric):
    type: Literal["goal_accuracy"]


class TopicAdherence(_Metric):
    type: Literal["topic_adherence"]
    relevant_topics: list[str] = Field(min_length=1)


class ToolUse(_Metric):
    type: Literal["tool_use"]
    available_tools: list[ToolSpec] = Field(min_length=1)


class TurnFaithfulness(_Metric):
    type: Literal["turn_faithfulness"]
    window_size: int = Field(default=10, ge=1)


class TurnContextualPrecision(_Metric):
    type: Literal["turn_contextual_precision"]
    window_size: int = Field(default=10, ge=1)


class TurnContextualRecall(_Metric):
    type: Literal["turn_contextual_recall"]
    window_size: int = Field(default=10, ge=1)


class TurnContextualRelevancy(_Metric):
    type: Literal["turn_contextual_relevancy"]
    window_size: int = Field(default=10, ge=1)


class ConversationalGEval(_Metric):
    type: Literal["conversational_g_eval"]
    name: str | None = None
    criteria: str | None = None
    evaluation_steps: list[str] | None = Field(default=None, min_length=1)
    evaluation_params: list[TurnParam] = Field(default_factory=lambda: list(_DEFAULT_TURN_PARAMS), min_length=1)

    @model_validator(mode="after")
    def _criteria_or_steps(self) -> ConversationalGEval:
        if self.evaluation_steps is None and not (self.criteria or "").strip():
            raise ValueError("give 'evaluation_steps', or 'criteria' for the judge to write steps from")
        return self


class Custom(_Metric):
    """Any DeepEval `BaseMetric` (or `BaseConversationalMetric`) subclass importable where the evaluator runs."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Literal["custom"]
    class_path: str = Field(
        alias="class",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$",
        description="package.module:ClassName",
    )
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the constructor.")
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)  # type: ignore[assignment]

    @property
    def key(self) -> str:
        return self.name or self.class_path.rsplit(":", 1)[1]


MetricSpec = Annotated[
    ExactMatch | PatternMatch | JsonCorrectness | AnswerRelevancy | Faithfulness | Hallucination
    | ContextualPrecision | ContextualRecall | ContextualRelevancy | Bias | Toxicity | Summarization
    | PromptAlignment | ToolCorrectness | ArgumentCorrectness | TaskCompletion | PiiLeakage | NonAdvice | Misuse
    | RoleViolation | GEval
    | ConversationCompleteness | KnowledgeRetention | RoleAdherence | TurnRelevancy | GoalAccuracy | TopicAdherence
    | ToolUse | TurnFaithfulness | TurnContextualPrecision | TurnContextualRecall | TurnContextualRelevancy
    | ConversationalGEval | Custom,
    Field(discriminator="type"),
]  # fmt: skip

# Metrics that always call the judge. `tool_correctness` does when it has `available_tools`; a custom metric gets
# the judge when the suite has one (see `uses_judge`).
LLM_METRICS = frozenset({
    "answer_relevancy", "faithfulness", "hallucination", "g_eval", "contextual_precision", "contextual_recall",
    "contextual_relevancy", "bias", "toxicity", "summarization", "prompt_alignment", "task_completion",
    "argument_correctness", "pii_leakage", "non_advice", "misuse", "role_violation",
    "conversation_completeness", "knowledge_retention", "role_adherence", "turn_relevancy", "goal_accuracy",
    "topic_adherence", "tool_use", "turn_faithfulness", "turn_contextual_precision", "turn_contextual_recall",
    "turn_contextual_relevancy", "conversational_g_eval",
})  # fmt: skip

# Metrics scored on a conversation (DeepEval's ConversationalTestCase), not on one input/output pair.
CONVERSATIONAL_METRICS = frozenset({
    "conversation_completeness", "knowledge_retention", "role_adherence", "turn_relevancy", "goal_accuracy",
    "topic_adherence", "tool_use", "turn_faithfulness", "turn_contextual_precision", "turn_contextual_recall",
    "turn_contextual_relevancy", "conversational_g_eval",
})  # fmt: skip

# What each DeepEval metric declares it needs, in DeepEval's own words: `_required_params` (SingleTurnParams) of
# single-turn metrics, `_required_test_case_params` (MultiTurnParams) plus `chatbot_role` when
# `_requires_chatbot_role` of conversational ones. tests/metrics/test_required_fields.py holds this table equal to
# the installed DeepEval, so an upgrade that changes a metric's needs fails there, not in a user's run.
# G-Eval's needs are its `evaluation_params`; a custom metric's are read from its class at load time.
REQUIRED_PARAMS: dict[str, tuple[str, ...]] = {
    "exact_match": ("input", "actual_output", "expected_output"),
    "pattern_match": ("input", "actual_output"),
    "json_correctness": ("input", "actual_output"),
    "answer_relevancy": ("input", "actual_output"),
    "faithfulness": ("input", "actual_output", "retrieval_context"),
    "hallucination": ("input", "actual_output", "context"),
    "contextual_precision": ("input", "retrieval_context", "expected_output"),
    "contextual_recall": ("input", "retrieval_context", "expected_output"),
    "contextual_relevancy": ("input", "retrieval_context"),
    "bias": ("input", "actual_output"),
    "toxicity": ("input", "actual_output"),
    "summarization": ("input", "actual_output"),
    "prompt_alignment": ("input", "actual_output"),
    "tool_correctness": ("input", "tools_called", "expected_tools"),
    "task_completion": ("input", "actual_output"),
    "argument_correctness": ("input", "tools_called"),
    "pii_leakage": ("input", "actual_output"),
    "non_advice": ("input", "actual_output"),
    "misuse": ("input", "actual_output"),
    "role_violation": ("input", "actual_output"),
    "conversation_completeness": ("content", "role"),
    "knowledge_retention": ("content", "role"),
    "role_adherence": ("content", "role", "chatbot_role"),
    "turn_relevancy": ("content", "role"),
    "goal_accuracy": ("role", "content"),
    "topic_adherence": ("role", "content"),
    "tool_use": ("role", "content"),
    "turn_faithfulness": ("role", "content", "retrieval_context"),
    "turn_contextual_precision": ("role", "content", "retrieval_context", "expected_outcome"),
    "turn_contextual_recall": ("role", "content", "retrieval_context", "expected_outcome"),
    "turn_contextual_relevancy": ("role", "content", "retrieval_context"),
}

# Fields every case has by construction: `input` is required by the loader, `actual_output` comes from the target
# (or the dataset: checked apart), a conversation's `role`/`content` from its `turns`.
_ALWAYS_PRESENT = frozenset({"input", "actual_output", "role", "content"})
# What a dataset can carry for each kind of case (see evaluator/dataset.py); on a conversation `retrieval_context`
# and `tools_called` live on the turns.
SINGLE_TURN_FIELDS = frozenset({"expected_output", "context", "retrieval_context", "tools_called", "expected_tools"})
CONVERSATION_FIELDS = frozenset({
    "scenario", "expected_outcome", "chatbot_role", "user_description", "context", "retrieval_context", "tools_called",
})  # fmt: skip


def declared_params(spec: MetricSpec) -> tuple[str, ...]:
    """The DeepEval parameters this metric needs, in DeepEval's words (see REQUIRED_PARAMS)."""
    if isinstance(spec, GEval | ConversationalGEval):
        return tuple(spec.evaluation_params)
    return REQUIRED_PARAMS.get(spec.type, ())


def fields_for(params: tuple[str, ...], *, conversational: bool) -> tuple[str, ...]:
    """DeepEval parameters → the dataset fields a case must carry for them (`turns` for any conversation).

    Raises ValueError naming a parameter no dataset field carries (a custom metric may declare one)."""
    fields = tuple(dict.fromkeys(p for p in params if p not in _ALWAYS_PRESENT))
    carried = CONVERSATION_FIELDS if conversational else SINGLE_TURN_FIELDS
    unknown = [f for f in fields if f not in carried]
    if unknown:
        kind = "a conversational" if conversational else "a single-turn"
        raise ValueError(f"needs '{unknown[0]}', which {kind} case of a dataset cannot carry")
    return ("turns", *fields) if conversational else fields


def required_fields(spec: MetricSpec) -> tuple[str, ...]:
    """Dataset fields a built-in metric needs besides input and actual_output (checked before any call is made).

    For a conversational metric: `turns` (the case is a conversation at all), and `retrieval_context` means that
    some turn carries one. A custom metric's needs come from its class (evaluator/engine/checks.py)."""
    fields = fields_for(declared_params(spec), conversational=spec.type in CONVERSATIONAL_METRICS)
    if isinstance(spec, RoleAdherence) and spec.chatbot_role:
        return tuple(f for f in fields if f != "chatbot_role")
    return fields


def uses_judge(spec: MetricSpec) -> bool:
    """Whether this metric calls the judge (a custom metric is given the judge when the suite has one)."""
    if isinstance(spec, ToolCorrectness):
        return bool(spec.available_tools)
    return spec.type in LLM_METRICS


PROFILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class Profile(_Strict):
    """A named selection of the dataset's cases (seed 001 section 1: a small set on every PR, all of it nightly).

    `tags` keeps the cases carrying any of them; `sample` then draws that many cases, stratified by each case's
    first tag (proportional allocation, every stratum at least one case while the sample allows), each stratum
    drawn with its own `random.Random(f"{seed}:{stratum}")`: the same suite and seed select the same cases on
    every machine. No `tags` and no `sample`: every case.

    `metadata` keeps the cases whose metadata (the dataset's own columns, see evaluator/dataset.py) matches: for
    each key, the case's value is one of those listed (e.g. `{difficulty: [hard], language: [de, fr]}`); with
    `tags`, a case must match both.
    """

    description: str = ""
    tags: list[str] | None = Field(default=None, min_length=1)
    metadata: dict[str, Annotated[list[str | int | float | bool], Field(min_length=1)]] | None = Field(
        default=None, min_length=1
    )
    sample: int | None = Field(default=None, ge=1)
    seed: int = 0


class Concurrency(_Strict):
    """Per-endpoint call limits; target and judge share one limit when they share a server."""

    max_calls_per_endpoint: int = Field(default=64, ge=1, le=4096)
    min_calls_per_endpoint: int = Field(default=1, ge=1)
    max_cases_in_flight: int | None = Field(default=None, ge=1)
    request_timeout_s: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=50)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Concurrency:
        if self.min_calls_per_endpoint > self.max_calls_per_endpoint:
            raise ValueError("min_calls_per_endpoint is above max_calls_per_endpoint")
        return self


class Sharding(_Strict):
    mode: Literal["contiguous", "balanced", "many"] = "contiguous"
    chunk_size: int = Field(default=25, ge=1, description="Cases per shard in 'many' mode.")


class Suite(_Strict):
    """A whole evaluation suite."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    description: str = ""
    dataset: str = Field(description="Path to a .jsonl, .csv or DeepEval goldens .json, relative to the suite.")
    dataset_format: Literal["jsonl", "csv", "goldens"] | None = None
    target: Target | None = None
    judge: Judge | None = None
    variants: list[Variant] | None = Field(
        default=None, min_length=1, description="Named targets; each case is answered by every one of them."
    )
    metrics: list[MetricSpec] = Field(min_length=1)
    gate: Gate = Field(default_factory=Gate)
    compare: CompareSettings = Field(default_factory=CompareSettings)
    profiles: dict[Annotated[str, Field(pattern=PROFILE_NAME)], Profile] = Field(default_factory=dict)
    concurrency: Concurrency = Field(default_factory=Concurrency)
    sharding: Sharding = Field(default_factory=Sharding)

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        keys = [m.key for m in self.metrics]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"metric names must be unique; give 'name' to: {', '.join(duplicates)}")
        if self.judge is None and any(uses_judge(m) for m in self.metrics):
            raise ValueError("LLM-judged metrics need a 'judge' endpoint")
        if self.variants is not None:
            names = [v.name for v in self.variants]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"variant names must be unique: {', '.join(twice)}")
        reference = self.compare.reference
        if reference is not None and reference not in self.variant_names:
            raise ValueError(f"compare.reference {reference!r} is not a variant ({', '.join(self.variant_names)})")
        return self

    @property
    def needs_judge(self) -> bool:
        return any(uses_judge(m) for m in self.metrics)

    @property
    def variant_names(self) -> list[str]:
        """Variant names in suite order; a suite without `variants` has the one implicit variant `default`."""
        return [v.name for v in self.variants] if self.variants else [DEFAULT_VARIANT]

    @property
    def reference(self) -> str:
        """The variant the others are compared with: `compare.reference`, else the first."""
        return self.compare.reference or self.variant_names[0]

    def targets(self) -> dict[str, Target | None]:
        """Each variant's complete target (None: the suite has no target; every case carries its answer)."""
        if not self.variants:
            return {DEFAULT_VARIANT: self.target}
        return {variant.name: variant.resolve(self.target) for variant in self.variants}


class LoadedSuite(BaseModel):
    """A validated suite plus where it came from and a hash that ties shards of one run together."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    suite: Suite
    path: Path
    dataset_path: Path
    suite_hash: str


# Endpoint class -> the variable that overrides its key (read at call time, never stored).
KEY_OVERRIDES: dict[str, str] = {"Target": "EVAL_TARGET_API_KEY", "Judge": "EVAL_JUDGE_API_KEY"}

ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "EVAL_TARGET_BASE_URL": ("target", "base_url"),
    "EVAL_TARGET_MODEL": ("target", "model"),
    "EVAL_JUDGE_BASE_URL": ("judge", "base_url"),
    "EVAL_JUDGE_MODEL": ("judge", "model"),
}


def _yaml_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Maps each YAML path to its 1-based line so validation errors can point into the file."""
    lines: dict[tuple[str | int, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                walk(value, child)
                lines[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def suite_location(loaded: LoadedSuite, path: tuple[str | int, ...]) -> str:
    """`suite.yaml:LINE: field 'a.b.c'` for a field of a loaded suite (the closest line the YAML has for it)."""
    try:
        lines = _yaml_lines(loaded.path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        lines = {}
    line = next((lines[path[:cut]] for cut in range(len(path), -1, -1) if path[:cut] in lines), None)
    return location(str(loaded.path), line, ".".join(str(p) for p in path))


def _format_errors(path: Path, error: ValidationError, lines: dict[tuple[str | int, ...], int]) -> str:
    messages = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p in _DISCRIMINATOR_TAGS))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = None
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in lines:
                line = lines[loc[:cut]]
                break
        messages.append(f"{location(str(path), line, field)}: {item['msg']}")
    return "\n".join(messages)


# pydantic puts the union member's tag into error locations; they are not fields the user wrote.
# They come from the MetricSpec union itself (one list of metrics: add a class, not a name here).
_DISCRIMINATOR_TAGS = {
    tag for spec in get_args(get_args(MetricSpec)[0]) for tag in get_args(spec.model_fields["type"].annotation)
}


def load_suite(path: str | Path, *, environ: dict[str, str] | None = None) -> LoadedSuite:
    """Reads, overrides from the environment, validates and hashes a suite file."""
    env = os.environ if environ is None else environ
    suite_path = Path(path)
    try:
        text = suite_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{suite_path}: suite file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{suite_path}: cannot read suite file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"{location(str(suite_path), line)}: invalid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise InputError(f"{location(str(suite_path), 1)}: a suite must be a YAML mapping")
    for variable, (section, key) in ENV_OVERRIDES.items():
        value = env.get(variable)
        if value and isinstance(data.get(section), dict):
            data[section] = {**data[section], key: value}
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise InputError(_format_errors(suite_path, exc, _yaml_lines(text))) from None
    _check_variants(suite_path, suite, _yaml_lines(text))
    dataset_path = (suite_path.parent / suite.dataset).resolve()
    if not dataset_path.is_file():
        line = _yaml_lines(text).get(("dataset",))
        raise InputError(f"{location(str(suite_path), line, 'dataset')}: file not found: {dataset_path}")
    return LoadedSuite(suite=suite, path=suite_path, dataset_path=dataset_path, suite_hash=_hash(suite, dataset_path))


def _check_variants(path: Path, suite: Suite, lines: dict[tuple[str | int, ...], int]) -> None:
    """Every variant, completed from `target`, is a whole target (a URL, a model, a valid prompt template)."""
    for index, variant in enumerate(suite.variants or []):
        try:
            variant.resolve(suite.target)
        except ValidationError as exc:
            messages = []
            for item in exc.errors():
                field = item["loc"][0] if item["loc"] else ""
                loc: tuple[str | int, ...] = ("variants", index, str(field)) if field else ("variants", index)
                hint = " (set it on the variant or in 'target')" if item["type"] == "missing" else ""
                line = next((lines[loc[:cut]] for cut in range(len(loc), 0, -1) if loc[:cut] in lines), None)
                where = location(str(path), line, ".".join(str(p) for p in loc))
                messages.append(f"{where}: variant {variant.name!r}: {item['msg']}{hint}")
            raise InputError("\n".join(messages)) from None


def _hash(suite: Suite, dataset_path: Path) -> str:
    """Hashes what decides the ANSWERS (the dataset's bytes and how it is read, each variant's target settings), so
    the run id and the resume check change exactly when recorded answers can no longer be reused.

    Left out: URLs and key variables (environment variables move them), descriptions, profiles (the selection is
    recorded apart, in the manifests and the report), and everything that only scores or judges the answers:
    metrics and thresholds, the judge, the gate, the comparison's settings, sharding and concurrency. Changing one
    of those and running into the same folder re-scores the recorded answers (each result carries the fingerprint
    of the scoring it got, `evaluator.identity.metric_fingerprints`) instead of calling the target again."""
    digest = hashlib.sha256()
    content = suite.model_dump(mode="json", include={"dataset_format", "target", "variants"}, exclude_none=False)
    if content.get("target"):
        content["target"].pop("base_url", None)
        content["target"].pop("api_key_env", None)
    for variant in content.get("variants") or []:
        variant.pop("base_url", None)
        variant.pop("api_key_env", None)
        variant.pop("description", None)
    digest.update(yaml.safe_dump(content, sort_keys=True).encode())
    with dataset_path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
