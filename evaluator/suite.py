"""The suite file: what to evaluate, against which endpoints, scored how, gated how.

Validated with pydantic; every bad field becomes one line naming the file, the YAML line and the field.
Environment variables override URLs and keys so a pod, a laptop and CI share one suite file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluator import metric_types
from evaluator.errors import InputError, location
from evaluator.metric_registry import REGISTRY, MetricOptions, RegisteredMetric

# Part of the suite schema too (its `gate:` and `compare:` keys), so its readers find them here.
from evaluator.policy import DEFAULT_VARIANT as DEFAULT_VARIANT
from evaluator.policy import CompareSettings as CompareSettings
from evaluator.policy import Gate as Gate
from evaluator.sharding import ShardingMode as ShardingMode


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


# Every metric type a suite accepts: the registered options models (evaluator/metric_types.py declares the built-in
# ones), validated as the discriminated union of whatever is registered.
MetricSpec = Annotated[MetricOptions, RegisteredMetric]
Custom = metric_types.Custom


def uses_judge(spec: MetricSpec) -> bool:
    """Whether this metric calls the judge (a custom metric is given the judge when the suite has one)."""
    return spec.calls_judge()


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
    mode: ShardingMode = "contiguous"
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
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p in REGISTRY))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = None
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in lines:
                line = lines[loc[:cut]]
                break
        messages.append(f"{location(str(path), line, field)}: {item['msg']}")
    return "\n".join(messages)


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
