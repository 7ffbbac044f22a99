"""A shard's files: one result record per unit (`results.jsonl`) and the shard's manifest (`manifest.json`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from evaluator.formats.base import (
    MANIFEST_SCHEMA,
    RESULT_SCHEMA,
    FileModel,
    NonNegativeFloat,
    NonNegativeInt,
)
from evaluator.policy import DEFAULT_VARIANT, CompareSettings, Gate


class ErrorInfo(FileModel):
    """An infrastructure error (kept apart from a quality failure)."""

    kind: str = Field(description="timeout, rate_limited, http_5xx, http_4xx, connection, invalid_response, metric")
    message: str


class MetricResult(FileModel):
    """One metric's outcome for one case; `score` is None when the metric errored, `threshold` when a custom
    metric that could not be built declared none."""

    score: float | None
    threshold: float | None
    success: bool
    reason: str | None = None
    error: str | None = None
    scoring: Literal["weighted", "integer_refused", "integer_absent", "integer_unmatched"] | None = Field(
        default=None,
        description="G-Eval only: weighted (by the judge's token probabilities, as G-Eval is published), or a "
        "whole-number score because the server refused logprobs (integer_refused), sent none (integer_absent) or "
        "none for the score's token (integer_unmatched)",
    )

    @model_serializer(mode="wrap")
    def _without_scoring(self, handler: SerializerFunctionWrapHandler) -> Any:
        """`scoring` is written only where there is one (G-Eval): other metrics' records stay byte-identical to
        files written without the field."""
        data = handler(self)
        if isinstance(data, dict) and data.get("scoring") is None:
            data.pop("scoring", None)
        return data


class Call(FileModel):
    """One logical call to an endpoint: the last attempt's latency, all attempts, tokens, the final error."""

    type: str = Field(description="target or judge")
    latency_s: NonNegativeFloat
    total_s: NonNegativeFloat = 0.0
    attempts: NonNegativeInt
    prompt_tokens: NonNegativeInt = 0
    completion_tokens: NonNegativeInt = 0
    status: int | None = None
    error: str | None = None
    cached: bool = Field(default=False, description="answered from the shard's response cache (no request was sent)")


class CaseOutcome(FileModel):
    """What a case produced: shared by the result record (on disk per shard) and the report's case list."""

    variant: str = Field(default=DEFAULT_VARIANT, description="the variant that answered")
    case_id: str
    case_index: NonNegativeInt
    input: str
    expected_output: str | None = None
    actual_output: str | None = None
    metrics: dict[str, MetricResult]
    calls: list[Call]
    success: bool
    error: ErrorInfo | None = None
    duration_s: NonNegativeFloat
    started_at: str
    finished_at: str
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="the dataset's own columns for this case (shown in the reports)"
    )

    @model_serializer(mode="wrap")
    def _without_metadata(self, handler: SerializerFunctionWrapHandler) -> Any:
        """`metadata` is written only where a case has some: a dataset without extra columns writes no empty field."""
        data = handler(self)
        if isinstance(data, dict) and not data.get("metadata"):
            data.pop("metadata", None)
        return data


class _RecordHead(FileModel):
    """Which run, suite and shard a record belongs to (first on the line, so a human reads it first)."""

    schema_version: Literal["evaluator.result/v1", "evaluator.result/v2", "evaluator.result/v3"] = Field(
        default=RESULT_SCHEMA, alias="schema"
    )
    run_id: str
    suite_hash: str
    commit: str
    shard_index: NonNegativeInt
    total_shards: Annotated[int, Field(ge=1)]


class ResultRecord(CaseOutcome, _RecordHead):
    """One line of a shard's `results.jsonl`: the run's identity, then the case's outcome."""

    scored_with: dict[str, str] = Field(
        default_factory=dict,
        description="each metric's scoring fingerprint (its settings, threshold, judge, DeepEval "
        "version): a record whose fingerprints differ from the suite's is re-scored on resume",
    )
    rescored: bool = Field(
        default=False,
        description="supersedes the unit's earlier record in this file: the same answer, scored anew",
    )


# --- one shard ---------------------------------------------------------------------------------------------
class LimitChange(FileModel):
    """The adaptive limit of one endpoint moved (the client's view of the server's capacity)."""

    time: str = Field(description="ISO 8601, UTC")
    elapsed_s: NonNegativeFloat = Field(description="seconds since the shard's client opened")
    limit: Literal["concurrency", "rate"] = Field(
        default="concurrency", description="calls in flight, or requests per second (pacing; 0 = not paced)"
    )
    old: float
    new: float
    reason: str = Field(
        description="overload (503/timeout/429), rate_limited (429 announcing a rate limit), recovered (grown back), "
        "restored (a cut on plain 429s undone: cutting did not help)"
    )


class EndpointSummary(FileModel):
    """Counters of one server (target and judge share them when they share a server)."""

    calls: NonNegativeInt
    attempts: NonNegativeInt
    by_status: dict[str, NonNegativeInt]
    peak_in_flight: NonNegativeInt
    final_limit: float
    limit_decreases: NonNegativeInt
    limit_changes: list[LimitChange] = Field(default_factory=list, description="each concurrency limit change")


class Counts(FileModel):
    cases: NonNegativeInt
    passed: NonNegativeInt
    failed: NonNegativeInt
    errored: NonNegativeInt


class TargetInfo(FileModel):
    """What a variant's answers came from (no key; the URL without credentials): recorded so two runs can be
    told apart or shown to be alike."""

    model: str
    endpoint: str
    system_prompt: str | None = None
    prompt_template: str = "{input}"
    max_tokens: int
    temperature: float
    seed: int | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)


class JudgeInfo(FileModel):
    """The judge every variant was scored by, and its sampling settings (the same for all variants)."""

    model: str
    endpoint: str
    max_tokens: int
    temperature: float
    seed: int | None = None
    structured_output: str
    extra_body: dict[str, Any] = Field(default_factory=dict)


class ProfileInfo(FileModel):
    """Which cases a run evaluated: the profile (None: every case), how it selects, and what it selected."""

    name: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, list[str | int | float | bool]] | None = Field(
        default=None, description="the profile's metadata filter: each key's allowed values"
    )
    sample: int | None = None
    seed: int | None = None
    dataset_cases: NonNegativeInt
    selected_cases: NonNegativeInt
    selection_sha256: str = Field(description="sha256 of the selected case ids, one per line, in dataset order")
    limit: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="`run --limit N`: only the first N selected cases (a smoke run)"
    )

    @model_serializer(mode="wrap")
    def _without_metadata(self, handler: SerializerFunctionWrapHandler) -> Any:
        """`metadata` is written only for a profile that filters by it: other manifests and reports carry no empty
        field."""
        data = handler(self)
        if isinstance(data, dict) and data.get("metadata") is None:
            data.pop("metadata", None)
        return data


class ModelProvenance(FileModel):
    """A model as its server describes it on `GET /v1/models` (vLLM's fields: `root` is the path or repository it
    loaded, `parent` the base of an adapter); `revision` where the server says one (a `revision` field, or the
    commit in a Hugging Face cache path `.../snapshots/<sha>`)."""

    model: str
    listed: bool = Field(description="the server's /v1/models lists this model (false: not listed, or no answer)")
    root: str | None = None
    parent: str | None = None
    revision: str | None = None
    max_model_len: int | None = None


class Provenance(FileModel):
    """What produced a shard's numbers, so a run can be told apart from a baseline judged otherwise."""

    evaluator_version: str
    deepeval_version: str | None
    python_version: str
    image: str | None = Field(default=None, description="EVAL_IMAGE: the evaluator image the shard ran in")
    targets: dict[str, ModelProvenance | None] = Field(default_factory=dict, description="each variant's model")
    judge: ModelProvenance | None = None


class StopInfo(FileModel):
    """Why a shard stopped before its end (manifest v4, state `cancelled`)."""

    signal: str = Field(description="SIGINT or SIGTERM")
    grace_s: NonNegativeFloat = Field(description="how long units in flight were given to finish")
    abandoned: NonNegativeInt = Field(description="units in flight when the grace ran out: they run on resume")


class CacheStats(FileModel):
    """The shard's response cache (manifest v4): requests answered from it, and responses it recorded."""

    enabled: bool
    hits: NonNegativeInt = 0
    stored: NonNegativeInt = 0


class Manifest(FileModel):
    """A shard's `manifest.json`: written atomically when the shard finished; vouches for its results file."""

    schema_version: Literal[
        "evaluator.manifest/v1", "evaluator.manifest/v2", "evaluator.manifest/v3", "evaluator.manifest/v4"
    ] = Field(default=MANIFEST_SCHEMA, alias="schema")
    run_id: str
    suite_hash: str
    suite_name: str
    commit: str
    shard_index: NonNegativeInt
    total_shards: Annotated[int, Field(ge=1)]
    sharding: str
    gate: Gate
    suite_path: str
    max_calls_per_endpoint: Annotated[int, Field(ge=1)]
    case_ids: list[str]
    counts: Counts
    results_sha256: str
    started_at: str
    finished_at: str
    wall_time_s: NonNegativeFloat
    endpoints: dict[str, EndpointSummary] = Field(default_factory=dict)
    case_variants: list[str] = Field(
        default_factory=list, description="the variant of each case_ids entry (empty: all `default`)"
    )
    targets: dict[str, TargetInfo | None] = Field(default_factory=dict, description="each variant's target")
    judge: JudgeInfo | None = Field(default=None, description="the judge and its sampling settings")
    g_eval_steps: dict[str, list[str]] = Field(
        default_factory=dict, description="the evaluation steps each G-Eval metric used (generated once per run)"
    )
    profile: ProfileInfo | None = Field(default=None, description="which cases the run selected")
    compare: CompareSettings = Field(default_factory=CompareSettings, description="the suite's comparison")
    state: Literal["complete", "cancelled"] = Field(
        default="complete",
        description="complete (every assigned unit has its result), or cancelled (stopped by SIGINT/SIGTERM: "
        "`counts` are what was done, the shard resumes on the next run)",
    )
    stop: StopInfo | None = Field(default=None, description="how a cancelled shard stopped")
    scoring: dict[str, str] = Field(
        default_factory=dict, description="metric -> scoring fingerprint every result of the shard carries"
    )
    cache: CacheStats | None = Field(default=None, description="the response cache")
    provenance: Provenance | None = Field(default=None, description="versions, image and served models")

    def units(self) -> list[tuple[str, str]]:
        """(variant, case id) of every unit assigned to the shard."""
        variants = self.case_variants or [DEFAULT_VARIANT] * len(self.case_ids)
        return list(zip(variants, self.case_ids, strict=False))
