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


class Judge(Endpoint):
    """The LLM that scores answers for LLM-judged metrics."""

    max_tokens: int = Field(default=1024, gt=0)
    structured_output: Literal["json_schema", "json_object", "none"] = Field(
        default="json_schema",
        description="json_schema for vLLM/OpenAI; json_object (with schema) for llama.cpp's server.",
    )


EvalParam = Literal["input", "actual_output", "expected_output", "context", "retrieval_context"]
_DEFAULT_EVAL_PARAMS: tuple[EvalParam, ...] = ("input", "actual_output")


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


class GEval(_Metric):
    type: Literal["g_eval"]
    name: str | None = None
    criteria: str | None = None
    evaluation_steps: list[str] = Field(
        min_length=1, description="Fixed steps: reproducible scores and one judge call fewer per case."
    )
    evaluation_params: list[EvalParam] = Field(default_factory=lambda: list(_DEFAULT_EVAL_PARAMS))


MetricSpec = Annotated[
    ExactMatch | PatternMatch | JsonCorrectness | AnswerRelevancy | Faithfulness | Hallucination | GEval,
    Field(discriminator="type"),
]

LLM_METRICS = frozenset({"answer_relevancy", "faithfulness", "hallucination", "g_eval"})
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "exact_match": ("expected_output",),
    "faithfulness": ("retrieval_context",),
    "hallucination": ("context",),
}


def required_fields(spec: MetricSpec) -> tuple[str, ...]:
    """Dataset fields a metric needs besides input and actual_output (checked before any call is made)."""
    if isinstance(spec, GEval):
        return tuple(p for p in spec.evaluation_params if p not in ("input", "actual_output"))
    return REQUIRED_FIELDS.get(spec.type, ())


class Gate(_Strict):
    """When a release may ship."""

    min_pass_rate: float = Field(default=0.8, ge=0.0, le=1.0)
    error_budget: float = Field(default=0.02, ge=0.0, le=1.0, description="Max share of errored cases.")
    mode: Literal["block", "warn"] = "block"
    regression_tolerance: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Max drop of any metric's mean against the baseline."
    )


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
    metrics: list[MetricSpec] = Field(min_length=1)
    gate: Gate = Field(default_factory=Gate)
    concurrency: Concurrency = Field(default_factory=Concurrency)
    sharding: Sharding = Field(default_factory=Sharding)

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        keys = [m.key for m in self.metrics]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"metric names must be unique; give 'name' to: {', '.join(duplicates)}")
        if self.judge is None and any(m.type in LLM_METRICS for m in self.metrics):
            raise ValueError("LLM-judged metrics need a 'judge' endpoint")
        return self

    @property
    def needs_judge(self) -> bool:
        return any(m.type in LLM_METRICS for m in self.metrics)


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


# The metric type names, from the MetricSpec union itself (one list of metrics: add a class, not a name here).
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
    dataset_path = (suite_path.parent / suite.dataset).resolve()
    if not dataset_path.is_file():
        line = _yaml_lines(text).get(("dataset",))
        raise InputError(f"{location(str(suite_path), line, 'dataset')}: file not found: {dataset_path}")
    return LoadedSuite(suite=suite, path=suite_path, dataset_path=dataset_path, suite_hash=_hash(suite, dataset_path))


def _hash(suite: Suite, dataset_path: Path) -> str:
    """Hashes what decides the results (suite content and dataset bytes), not URLs that env vars move."""
    digest = hashlib.sha256()
    content = suite.model_dump(mode="json", exclude={"concurrency": True, "description": True})
    for section in ("target", "judge"):
        if content.get(section):
            content[section].pop("base_url", None)
            content[section].pop("api_key_env", None)
    digest.update(yaml.safe_dump(content, sort_keys=True).encode())
    with dataset_path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
