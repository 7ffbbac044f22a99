"""The built-in metric types: one decorated options model each (the registry is evaluator/metric_registry.py).

Adding a metric type is one entry here: its options (what a suite writes), the DeepEval class, what a case must
carry for it, and its line in the README's metric table. Constructor keywords beyond `threshold` and the judge
come from `deepeval_options`; DeepEval's own types are imported there, where a metric is built, so loading a suite
does not import DeepEval.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evaluator.metric_registry import REGISTRY, MetricOptions, metric_type

__all__ = ["REGISTRY", "MetricOptions", "metric_type"]  # the registry, with the built-in types registered

EvalParam = Literal[
    "input", "actual_output", "expected_output", "context", "retrieval_context", "tools_called", "expected_tools"
]  # fmt: skip
TurnParam = Literal[
    "role", "content", "retrieval_context", "tools_called", "scenario", "expected_outcome", "context",
    "user_description", "chatbot_role",
]  # fmt: skip
_DEFAULT_EVAL_PARAMS: tuple[EvalParam, ...] = ("input", "actual_output")
_DEFAULT_TURN_PARAMS: tuple[TurnParam, ...] = ("role", "content")


class _Windowed(MetricOptions):
    window_size: int = Field(default=10, ge=1)

    def deepeval_options(self) -> dict[str, Any]:
        return {"window_size": self.window_size}


def _tool_calls(tools: list[ToolSpec]) -> list[Any]:
    from deepeval.test_case import ToolCall

    return [ToolCall(**tool.model_dump(exclude_none=True)) for tool in tools]


_JSON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "array": list,
                               "object": dict}  # fmt: skip


@functools.lru_cache(maxsize=64)
def _schema_model(canonical: str) -> type[BaseModel]:
    """A pydantic model from a flat JSON Schema object, for DeepEval's JsonCorrectnessMetric (built once)."""
    import json

    from pydantic import create_model

    schema = json.loads(canonical)
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for prop, definition in (schema.get("properties") or {}).items():
        python_type = _JSON_TYPES.get(str(definition.get("type", "string")), Any)
        fields[prop] = (python_type, ...) if prop in required else (python_type | None, None)
    return create_model("ExpectedSchema", **fields)


def schema_model(schema: dict[str, Any]) -> type[BaseModel]:
    import json

    return _schema_model(json.dumps(schema, sort_keys=True))


def _deepeval(name: str) -> str:
    return f"deepeval.metrics:{name}"


_ANSWER = ("input", "actual_output")
_TURNS = ("role", "content")


@metric_type(deepeval=_deepeval("ExactMatchMetric"), needs=(*_ANSWER, "expected_output"), judge=False,
             doc="— (no judge)")  # fmt: skip
class ExactMatch(MetricOptions):
    type: Literal["exact_match"]
    threshold: float = Field(default=1.0, ge=0.0, le=1.0)


@metric_type(deepeval=_deepeval("PatternMatchMetric"), needs=_ANSWER, judge=False,
             doc="`pattern`, `ignore_case` (no judge)")  # fmt: skip
class PatternMatch(MetricOptions):
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

    def deepeval_options(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "ignore_case": self.ignore_case}


@metric_type(deepeval=_deepeval("JsonCorrectnessMetric"), needs=_ANSWER, judge=False,
             doc="`expected_schema` (no judge call)")  # fmt: skip
class JsonCorrectness(MetricOptions):
    type: Literal["json_correctness"]
    expected_schema: dict[str, Any] = Field(description="JSON Schema of an object the answer must match.")
    threshold: float = Field(default=1.0, ge=0.0, le=1.0)

    def deepeval_options(self) -> dict[str, Any]:
        return {"expected_schema": schema_model(self.expected_schema), "include_reason": False, "strict_mode": False}


@metric_type(deepeval=_deepeval("AnswerRelevancyMetric"), needs=_ANSWER)
class AnswerRelevancy(MetricOptions):
    type: Literal["answer_relevancy"]


@metric_type(deepeval=_deepeval("FaithfulnessMetric"), needs=(*_ANSWER, "retrieval_context"))
class Faithfulness(MetricOptions):
    type: Literal["faithfulness"]


@metric_type(deepeval=_deepeval("HallucinationMetric"), needs=(*_ANSWER, "context"))
class Hallucination(MetricOptions):
    type: Literal["hallucination"]


@metric_type(deepeval=_deepeval("ContextualPrecisionMetric"), needs=("input", "retrieval_context", "expected_output"))
class ContextualPrecision(MetricOptions):
    type: Literal["contextual_precision"]


@metric_type(deepeval=_deepeval("ContextualRecallMetric"), needs=("input", "retrieval_context", "expected_output"))
class ContextualRecall(MetricOptions):
    type: Literal["contextual_recall"]


@metric_type(deepeval=_deepeval("ContextualRelevancyMetric"), needs=("input", "retrieval_context"))
class ContextualRelevancy(MetricOptions):
    type: Literal["contextual_relevancy"]


@metric_type(deepeval=_deepeval("BiasMetric"), needs=_ANSWER, doc="— (DeepEval 4: 1 = unbiased, higher is better)")
class Bias(MetricOptions):
    """DeepEval 4 scores the share of unbiased opinions: 1 is unbiased, and a case passes at or above threshold."""

    type: Literal["bias"]


@metric_type(deepeval=_deepeval("ToxicityMetric"), needs=_ANSWER, doc="— (DeepEval 4: 1 = harmless, higher is better)")
class Toxicity(MetricOptions):
    """DeepEval 4 scores the share of non-toxic opinions: 1 is harmless, and a case passes at or above threshold."""

    type: Literal["toxicity"]


@metric_type(deepeval=_deepeval("SummarizationMetric"), needs=_ANSWER, needs_doc="`input` is the text summarized",
             doc="`n`, `assessment_questions`, `truths_extraction_limit`")  # fmt: skip
class Summarization(MetricOptions):
    type: Literal["summarization"]
    n: int = Field(default=5, ge=1, description="Assessment questions the judge generates when none are given.")
    assessment_questions: list[str] | None = Field(default=None, min_length=1)
    truths_extraction_limit: int | None = Field(default=None, ge=1)

    def deepeval_options(self) -> dict[str, Any]:
        return {"n": self.n, "assessment_questions": self.assessment_questions,
                "truths_extraction_limit": self.truths_extraction_limit}  # fmt: skip


@metric_type(deepeval=_deepeval("PromptAlignmentMetric"), needs=_ANSWER, doc="`prompt_instructions` (required)")
class PromptAlignment(MetricOptions):
    type: Literal["prompt_alignment"]
    prompt_instructions: list[str] = Field(min_length=1)

    def deepeval_options(self) -> dict[str, Any]:
        return {"prompt_instructions": list(self.prompt_instructions)}


class ToolSpec(BaseModel):
    """A tool as DeepEval's `ToolCall` describes it (name, and optionally what it was called with)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str | None = None
    input_parameters: dict[str, Any] | None = None
    output: Any = None


@metric_type(deepeval=_deepeval("ToolCorrectnessMetric"), needs=("input", "tools_called", "expected_tools"),
             judge=False, doc="`evaluation_params` (`input_parameters`, `output`), `should_exact_match`, "
             "`should_consider_ordering`, `available_tools` (then the judge rates the selection)")  # fmt: skip
class ToolCorrectness(MetricOptions):
    type: Literal["tool_correctness"]
    evaluation_params: list[Literal["input_parameters", "output"]] = Field(
        default_factory=list, description="Also compare these of each tool call, not only its name."
    )
    should_exact_match: bool = False
    should_consider_ordering: bool = False
    available_tools: list[ToolSpec] | None = Field(
        default=None, description="When given, the judge also rates the tool selection (an LLM call)."
    )

    def calls_judge(self) -> bool:
        return bool(self.available_tools)

    def deepeval_options(self) -> dict[str, Any]:
        from deepeval.test_case import ToolCallParams

        return {
            "evaluation_params": [ToolCallParams(p) for p in self.evaluation_params],
            "should_exact_match": self.should_exact_match,
            "should_consider_ordering": self.should_consider_ordering,
            "available_tools": _tool_calls(self.available_tools) if self.available_tools else None,
        }


@metric_type(deepeval=_deepeval("ArgumentCorrectnessMetric"), needs=("input", "tools_called"))
class ArgumentCorrectness(MetricOptions):
    type: Literal["argument_correctness"]


@metric_type(deepeval=_deepeval("TaskCompletionMetric"), needs=_ANSWER, needs_doc="`tools_called` used when present",
             doc="`task`")  # fmt: skip
class TaskCompletion(MetricOptions):
    type: Literal["task_completion"]
    task: str | None = Field(default=None, description="The task; when absent the judge infers it from the input.")

    def deepeval_options(self) -> dict[str, Any]:
        return {"task": self.task}


@metric_type(deepeval=_deepeval("PIILeakageMetric"), needs=_ANSWER)
class PiiLeakage(MetricOptions):
    type: Literal["pii_leakage"]


@metric_type(deepeval=_deepeval("NonAdviceMetric"), needs=_ANSWER, doc="`advice_types` (required)")
class NonAdvice(MetricOptions):
    type: Literal["non_advice"]
    advice_types: list[str] = Field(min_length=1, description="Kinds of advice the answer must not give.")

    def deepeval_options(self) -> dict[str, Any]:
        return {"advice_types": list(self.advice_types)}


@metric_type(deepeval=_deepeval("MisuseMetric"), needs=_ANSWER, doc="`domain` (required)")
class Misuse(MetricOptions):
    type: Literal["misuse"]
    domain: str = Field(min_length=1, description="The domain the assistant is meant for.")

    def deepeval_options(self) -> dict[str, Any]:
        return {"domain": self.domain}


@metric_type(deepeval=_deepeval("RoleViolationMetric"), needs=_ANSWER, doc="`role` (required)")
class RoleViolation(MetricOptions):
    type: Literal["role_violation"]
    role: str = Field(min_length=1, description="The role the assistant must keep.")

    def deepeval_options(self) -> dict[str, Any]:
        return {"role": self.role}


class _GEvalOptions(MetricOptions):
    """What both G-Evals take: steps, or criteria the judge writes steps from; the case fields they read (each
    G-Eval declares its own `evaluation_params`: a single-turn case's fields or a conversation's)."""

    criteria: str | None = None
    evaluation_steps: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Fixed steps: reproducible scores. Without them the judge writes steps from `criteria` "
        "once per run, shared by every shard; they are recorded in the run's results folder.",
    )

    @model_validator(mode="after")
    def _criteria_or_steps(self) -> Self:
        if self.evaluation_steps is None and not (self.criteria or "").strip():
            raise ValueError("give 'evaluation_steps', or 'criteria' for the judge to write steps from")
        return self

    def declared_params(self) -> tuple[str, ...]:
        return tuple(getattr(self, "evaluation_params", ()))

    def _deepeval_params(self) -> list[Any]:
        """`evaluation_params` as DeepEval's enum of this G-Eval (imported here, where a metric is built)."""
        raise NotImplementedError

    def deepeval_options(self) -> dict[str, Any]:
        return {"name": self.key, "criteria": self.criteria, "evaluation_params": self._deepeval_params()}


@metric_type(deepeval=_deepeval("GEval"), needs=None, needs_doc="its `evaluation_params`",
             doc="`criteria` and/or `evaluation_steps`, `evaluation_params`")  # fmt: skip
class GEval(_GEvalOptions):
    type: Literal["g_eval"]
    evaluation_params: list[EvalParam] = Field(default_factory=lambda: list(_DEFAULT_EVAL_PARAMS), min_length=1)

    def _deepeval_params(self) -> list[Any]:
        from deepeval.test_case import SingleTurnParams

        return [SingleTurnParams(p) for p in self.evaluation_params]


# --- conversational metrics (DeepEval's ConversationalTestCase: a case with recorded `turns`) ----------------
@metric_type(deepeval=_deepeval("ConversationCompletenessMetric"), needs=("content", "role"), conversational=True,
             doc="`window_size`")  # fmt: skip
class ConversationCompleteness(_Windowed):
    type: Literal["conversation_completeness"]
    window_size: int = Field(default=3, ge=1)


@metric_type(deepeval=_deepeval("KnowledgeRetentionMetric"), needs=("content", "role"), conversational=True)
class KnowledgeRetention(MetricOptions):
    type: Literal["knowledge_retention"]


@metric_type(deepeval=_deepeval("RoleAdherenceMetric"), needs=("content", "role", "chatbot_role"),
             conversational=True, doc="`chatbot_role` (default for cases without one)")  # fmt: skip
class RoleAdherence(MetricOptions):
    type: Literal["role_adherence"]
    chatbot_role: str | None = Field(
        default=None, description="The role the assistant plays, for cases whose own `chatbot_role` is empty."
    )

    def optional_params(self) -> tuple[str, ...]:
        return ("chatbot_role",) if self.chatbot_role else ()

    def with_defaults(self, test_case: Any) -> Any:
        if self.chatbot_role and getattr(test_case, "turns", None) is not None and not test_case.chatbot_role:
            return test_case.model_copy(update={"chatbot_role": self.chatbot_role})
        return test_case


@metric_type(deepeval=_deepeval("TurnRelevancyMetric"), needs=("content", "role"), conversational=True,
             doc="`window_size`")  # fmt: skip
class TurnRelevancy(_Windowed):
    type: Literal["turn_relevancy"]


@metric_type(deepeval=_deepeval("GoalAccuracyMetric"), needs=_TURNS, conversational=True)
class GoalAccuracy(MetricOptions):
    type: Literal["goal_accuracy"]


@metric_type(deepeval=_deepeval("TopicAdherenceMetric"), needs=_TURNS, conversational=True,
             doc="`relevant_topics` (required)")  # fmt: skip
class TopicAdherence(MetricOptions):
    type: Literal["topic_adherence"]
    relevant_topics: list[str] = Field(min_length=1)

    def deepeval_options(self) -> dict[str, Any]:
        return {"relevant_topics": list(self.relevant_topics)}


@metric_type(deepeval=_deepeval("ToolUseMetric"), needs=_TURNS, conversational=True,
             needs_doc="tool calls on the turns", doc="`available_tools` (required)")  # fmt: skip
class ToolUse(MetricOptions):
    type: Literal["tool_use"]
    available_tools: list[ToolSpec] = Field(min_length=1)

    def deepeval_options(self) -> dict[str, Any]:
        return {"available_tools": _tool_calls(self.available_tools)}


# DeepEval 4.3: TurnFaithfulnessMetric's `_a_get_faithfulness_scores` calls the sync
# `_get_interaction_score_and_reason`. The catalogue test runs every metric type on a real server, so a DeepEval
# release that adds such a call to another metric fails there.
@metric_type(deepeval=_deepeval("TurnFaithfulnessMetric"), needs=(*_TURNS, "retrieval_context"),
             conversational=True, sync_only=True, doc="`window_size`")  # fmt: skip
class TurnFaithfulness(_Windowed):
    type: Literal["turn_faithfulness"]


@metric_type(deepeval=_deepeval("TurnContextualPrecisionMetric"), conversational=True, doc="`window_size`",
             needs=(*_TURNS, "retrieval_context", "expected_outcome"))  # fmt: skip
class TurnContextualPrecision(_Windowed):
    type: Literal["turn_contextual_precision"]


@metric_type(deepeval=_deepeval("TurnContextualRecallMetric"), conversational=True, doc="`window_size`",
             needs=(*_TURNS, "retrieval_context", "expected_outcome"))  # fmt: skip
class TurnContextualRecall(_Windowed):
    type: Literal["turn_contextual_recall"]


@metric_type(deepeval=_deepeval("TurnContextualRelevancyMetric"), conversational=True, doc="`window_size`",
             needs=(*_TURNS, "retrieval_context"))  # fmt: skip
class TurnContextualRelevancy(_Windowed):
    type: Literal["turn_contextual_relevancy"]


@metric_type(deepeval=_deepeval("ConversationalGEval"), needs=None, conversational=True,
             needs_doc="`turns` and its `evaluation_params`",
             doc="`criteria` and/or `evaluation_steps`, `evaluation_params`")  # fmt: skip
class ConversationalGEval(_GEvalOptions):
    type: Literal["conversational_g_eval"]
    evaluation_params: list[TurnParam] = Field(default_factory=lambda: list(_DEFAULT_TURN_PARAMS), min_length=1)

    def _deepeval_params(self) -> list[Any]:
        from deepeval.test_case import MultiTurnParams

        return [MultiTurnParams(p) for p in self.evaluation_params]


@metric_type(deepeval=None, needs=None, judge=False, needs_doc="what the class declares",
             doc="`args` (constructor keywords)")  # fmt: skip
class Custom(MetricOptions):
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
