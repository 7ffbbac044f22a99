"""The files the evaluator writes, as typed models: one result record per case, one manifest per shard, one report.

Every writer builds these models and every reader validates through them, so a field means the same thing to
the runner, the aggregate, the gate, the reports, `plan` and the tests. Each file names its schema and version
in its `schema` field; JSON Schemas generated from these models are published in docs/schemas/ (a test fails
when they drift), and docs/contract.md explains them.

Validation is strict (a score must be a JSON number, an id a string, a flag a boolean): a damaged file is
reported with the field that is wrong instead of being coerced into something that looks right.

Versions:
- `evaluator.result/v2`: v1 plus `variant` (which named target answered). v1 records read as variant `default`.
- `evaluator.manifest/v3`: v2 plus `case_variants`, `targets`, `judge`, `g_eval_steps`, `profile`, `compare`.
  v2 (v1 plus each endpoint's `limit_changes`) and v1 manifests are still read.
- `evaluator.report/v3`: v2 plus `cases[].variant`, `variants` (per-variant summaries with confidence
  intervals), `reference`, `comparisons` (paired differences), `judge`, `g_eval_steps`, `profile`, `compare`,
  and `ci_low`/`ci_high` on metric summaries. v2 (v1 plus `shards.per_shard[].endpoints` and `problems[].field`)
  and v1 reports are still read: the new fields are empty, every case is variant `default`.
- The run's life cycle (issue 18): `evaluator.result/v3` adds `scored_with` (each metric's scoring fingerprint),
  `rescored` and `calls[].cached`; `evaluator.manifest/v4` adds `state` (`complete` or `cancelled`), `stop`,
  `scoring`, `cache`, `provenance` and `profile.limit`; `evaluator.report/v4` adds `provenance`, `notes`,
  `shards.cancelled` and `shards.per_shard[].provenance`/`state`. Older files load with these empty.
- Output for people and for logs (issue 18): result v3 and report v4 also add `metrics.*.scoring` (how a G-Eval
  score was computed) and a case's `metadata` (the dataset's own columns), manifest v4 and report v4 a profile's
  `metadata` filter. Each is written only where present (no `scoring` for other metrics, no empty `metadata`).
- Reports that stream (issue 22): `evaluator.report/v5` is v4 with its cases moved out of REPORT.json into a
  gzip-compressed JSON Lines sidecar beside it (`cases_file`: its name, count and sha256; one `ReportCase` a
  line, in report order), so REPORT.json is a summary whose size does not grow with the run and the aggregate
  writes the cases as it merges them. `load_report` reads the sidecar back into `cases` (verified against the
  count and checksum; a missing or damaged sidecar is an InputError naming it). v1-v4 reports, whose cases are
  inline, load as before; a v5 report may also carry its cases inline (no `cases_file`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError, model_serializer

from evaluator.errors import InputError
from evaluator.suite import DEFAULT_VARIANT, CompareSettings, Gate

RESULT_SCHEMA: Final = "evaluator.result/v3"
MANIFEST_SCHEMA: Final = "evaluator.manifest/v4"
REPORT_SCHEMA: Final = "evaluator.report/v5"
RESULT_SCHEMAS: Final = ("evaluator.result/v1", "evaluator.result/v2", RESULT_SCHEMA)
MANIFEST_SCHEMAS: Final = ("evaluator.manifest/v1", "evaluator.manifest/v2", "evaluator.manifest/v3", MANIFEST_SCHEMA)
REPORT_SCHEMAS: Final = (
    "evaluator.report/v1", "evaluator.report/v2", "evaluator.report/v3", "evaluator.report/v4", REPORT_SCHEMA
)  # fmt: skip
MANIFEST_SCHEMA_V1: Final = "evaluator.manifest/v1"
REPORT_SCHEMA_V1: Final = "evaluator.report/v1"


def unit_key(variant: str, case_id: str) -> str:
    """The name of one unit of work (a case answered by a variant): the case id for the implicit variant, as
    before variants existed, else `variant/case_id` (a variant name cannot hold a '/')."""
    return case_id if variant == DEFAULT_VARIANT else f"{variant}/{case_id}"


NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    """Strict, closed records: unknown or mistyped fields are damage, not data."""

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


# --- one case ----------------------------------------------------------------------------------------------
class ErrorInfo(_Model):
    """An infrastructure error (kept apart from a quality failure)."""

    kind: str = Field(description="timeout, rate_limited, http_5xx, http_4xx, connection, invalid_response, metric")
    message: str


class MetricResult(_Model):
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
        """`scoring` is written only where there is one (G-Eval): other metrics' records read as before."""
        data = handler(self)
        if isinstance(data, dict) and data.get("scoring") is None:
            data.pop("scoring", None)
        return data


class Call(_Model):
    """One logical call to an endpoint: the last attempt's latency, all attempts, tokens, the final error."""

    type: str = Field(description="target or judge")
    latency_s: NonNegativeFloat
    total_s: NonNegativeFloat = 0.0
    attempts: NonNegativeInt
    prompt_tokens: NonNegativeInt = 0
    completion_tokens: NonNegativeInt = 0
    status: int | None = None
    error: str | None = None
    cached: bool = Field(
        default=False, description="result v3: answered from the shard's response cache (no request was sent)"
    )


class CaseOutcome(_Model):
    """What a case produced: shared by the result record (on disk per shard) and the report's case list."""

    variant: str = Field(default=DEFAULT_VARIANT, description="result v2: the variant that answered")
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
        """`metadata` is written only where a case has some: a dataset without extra columns writes as before."""
        data = handler(self)
        if isinstance(data, dict) and not data.get("metadata"):
            data.pop("metadata", None)
        return data


class _RecordHead(_Model):
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
        description="result v3: each metric's scoring fingerprint (its settings, threshold, judge, DeepEval "
        "version): a record whose fingerprints differ from the suite's is re-scored on resume",
    )
    rescored: bool = Field(
        default=False,
        description="result v3: supersedes the unit's earlier record in this file: the same answer, scored anew",
    )


# --- one shard ---------------------------------------------------------------------------------------------
class LimitChange(_Model):
    """The adaptive limit of one endpoint moved (the client's view of the server's capacity)."""

    time: str = Field(description="ISO 8601, UTC")
    elapsed_s: NonNegativeFloat = Field(description="seconds since the shard's client opened")
    limit: Literal["concurrency", "rate"] = Field(
        default="concurrency", description="calls in flight, or requests per second (pacing; 0 = not paced)"
    )
    old: float
    new: float
    reason: str = Field(description="overload (503/timeout), rate_limited (429), recovered (grown back)")


class EndpointSummary(_Model):
    """Counters of one server (target and judge share them when they share a server)."""

    calls: NonNegativeInt
    attempts: NonNegativeInt
    by_status: dict[str, NonNegativeInt]
    peak_in_flight: NonNegativeInt
    final_limit: float
    limit_decreases: NonNegativeInt
    limit_changes: list[LimitChange] = Field(default_factory=list, description="manifest v2")


class Counts(_Model):
    cases: NonNegativeInt
    passed: NonNegativeInt
    failed: NonNegativeInt
    errored: NonNegativeInt


class TargetInfo(_Model):
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


class JudgeInfo(_Model):
    """The judge every variant was scored by, and its sampling settings (the same for all variants)."""

    model: str
    endpoint: str
    max_tokens: int
    temperature: float
    seed: int | None = None
    structured_output: str
    extra_body: dict[str, Any] = Field(default_factory=dict)


class ProfileInfo(_Model):
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
        default=None, description="manifest v4: `run --limit N`: only the first N selected cases (a smoke run)"
    )

    @model_serializer(mode="wrap")
    def _without_metadata(self, handler: SerializerFunctionWrapHandler) -> Any:
        """`metadata` is written only for a profile that filters by it: other manifests and reports read as before."""
        data = handler(self)
        if isinstance(data, dict) and data.get("metadata") is None:
            data.pop("metadata", None)
        return data


class ModelProvenance(_Model):
    """A model as its server describes it on `GET /v1/models` (vLLM's fields: `root` is the path or repository it
    loaded, `parent` the base of an adapter); `revision` where the server says one (a `revision` field, or the
    commit in a Hugging Face cache path `.../snapshots/<sha>`)."""

    model: str
    listed: bool = Field(description="the server's /v1/models lists this model (false: not listed, or no answer)")
    root: str | None = None
    parent: str | None = None
    revision: str | None = None
    max_model_len: int | None = None


class Provenance(_Model):
    """What produced a shard's numbers, so a run can be told apart from a baseline judged otherwise."""

    evaluator_version: str
    deepeval_version: str | None
    python_version: str
    image: str | None = Field(default=None, description="EVAL_IMAGE: the evaluator image the shard ran in")
    targets: dict[str, ModelProvenance | None] = Field(default_factory=dict, description="each variant's model")
    judge: ModelProvenance | None = None


class StopInfo(_Model):
    """Why a shard stopped before its end (manifest v4, state `cancelled`)."""

    signal: str = Field(description="SIGINT or SIGTERM")
    grace_s: NonNegativeFloat = Field(description="how long units in flight were given to finish")
    abandoned: NonNegativeInt = Field(description="units in flight when the grace ran out: they run on resume")


class CacheStats(_Model):
    """The shard's response cache (manifest v4): requests answered from it, and responses it recorded."""

    enabled: bool
    hits: NonNegativeInt = 0
    stored: NonNegativeInt = 0


class Manifest(_Model):
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
        default_factory=list, description="v3: the variant of each case_ids entry (empty: all `default`)"
    )
    targets: dict[str, TargetInfo | None] = Field(default_factory=dict, description="v3: each variant's target")
    judge: JudgeInfo | None = Field(default=None, description="v3: the judge and its sampling settings")
    g_eval_steps: dict[str, list[str]] = Field(
        default_factory=dict, description="v3: the evaluation steps each G-Eval metric used (generated once per run)"
    )
    profile: ProfileInfo | None = Field(default=None, description="v3: which cases the run selected")
    compare: CompareSettings = Field(default_factory=CompareSettings, description="v3: the suite's comparison")
    state: Literal["complete", "cancelled"] = Field(
        default="complete",
        description="v4: complete (every assigned unit has its result), or cancelled (stopped by SIGINT/SIGTERM: "
        "`counts` are what was done, the shard resumes on the next run)",
    )
    stop: StopInfo | None = Field(default=None, description="v4: how a cancelled shard stopped")
    scoring: dict[str, str] = Field(
        default_factory=dict, description="v4: metric -> scoring fingerprint every result of the shard carries"
    )
    cache: CacheStats | None = Field(default=None, description="v4: the response cache")
    provenance: Provenance | None = Field(default=None, description="v4: versions, image and served models")

    def units(self) -> list[tuple[str, str]]:
        """(variant, case id) of every unit assigned to the shard."""
        variants = self.case_variants or [DEFAULT_VARIANT] * len(self.case_ids)
        return list(zip(variants, self.case_ids, strict=False))


# --- the report --------------------------------------------------------------------------------------------
class SuiteInfo(_Model):
    name: str | None = None
    hash: str | None = None
    path: str | None = None
    max_calls_per_endpoint: int | None = None


class ShardTiming(_Model):
    index: NonNegativeInt
    cases: NonNegativeInt
    errored: NonNegativeInt
    started_at: str | None = None
    finished_at: str | None = None
    wall_time_s: NonNegativeFloat | None = None
    endpoints: dict[str, EndpointSummary] = Field(default_factory=dict, description="report v2")
    state: Literal["complete", "cancelled"] = Field(default="complete", description="report v4")
    provenance: Provenance | None = Field(default=None, description="report v4: the shard's provenance")


class Shards(_Model):
    expected: NonNegativeInt | None = None
    complete: list[int] = Field(default_factory=list)
    missing: list[int] = Field(default_factory=list)
    incomplete: list[int] = Field(default_factory=list)
    cancelled: list[int] = Field(default_factory=list, description="v4: incomplete shards stopped by a signal")
    per_shard: list[ShardTiming] = Field(default_factory=list)


class Problem(_Model):
    """A reason not to trust the report; the gate refuses any report that has one."""

    kind: str = Field(
        description="missing_shard, incomplete_shard, unexpected_shard, duplicate_case, corrupt_line, "
        "truncated_line, invalid_record, invalid_manifest, misplaced_record, mixed_run_id, mixed_suite, "
        "mixed_shard_count, checksum_mismatch, missing_case, mixed_profile, mixed_g_eval_steps, mixed_judge, "
        "mixed_scoring (v4), stale_scoring (v4)"
    )
    message: str
    shard: int | None = None
    file: str | None = None
    line: int | None = None
    field: str | None = Field(default=None, description="report v2: the damaged field, dotted")


class Totals(_Model):
    cases: NonNegativeInt
    passed: NonNegativeInt
    failed: NonNegativeInt
    errored: NonNegativeInt
    pass_rate: float | None = Field(description="passed / (cases - errored)")
    error_rate: float | None = Field(description="errored / cases")
    wall_time_s: float | None = None
    prompt_tokens: NonNegativeInt = 0
    completion_tokens: NonNegativeInt = 0
    calls: NonNegativeInt = 0


class MetricSummary(_Model):
    count: NonNegativeInt
    errors: NonNegativeInt
    mean: float | None
    pass_rate: float | None
    p50: float | None
    p95: float | None
    threshold: float | None
    ci_low: float | None = Field(
        default=None,
        description="v3: the mean's confidence interval: Wilson for 0/1 scores, a betting interval for scores in "
        "0..1 (within 0..1), Student-t for scores without bounds",
    )
    ci_high: float | None = None
    pass_rate_ci_low: float | None = Field(default=None, description="v3: the pass rate's Wilson interval")
    pass_rate_ci_high: float | None = None


class LatencySummary(_Model):
    count: NonNegativeInt
    mean: float | None
    p50: float | None
    p95: float | None
    max: float | None


class SlowCase(_Model):
    case_id: str
    shard: int
    duration_s: float | None


class ReportCase(CaseOutcome):
    """A case in the report: its outcome and the shard that evaluated it."""

    shard: int

    @property
    def key(self) -> str:
        return unit_key(self.variant, self.case_id)


class VariantSummary(_Model):
    """One variant's numbers: what the leaderboard shows."""

    target: TargetInfo | None = None
    totals: Totals
    pass_rate_ci_low: float | None = Field(default=None, description="Wilson interval of the case pass rate")
    pass_rate_ci_high: float | None = None
    metrics: dict[str, MetricSummary]
    latency: dict[str, LatencySummary] = Field(default_factory=dict)
    errors_by_kind: dict[str, NonNegativeInt] = Field(default_factory=dict)


class Difference(_Model):
    """Candidate minus reference on the cases both scored (neither errored): the mean difference with its confidence
    interval, per-case wins/ties/losses and the exact sign test's p-value. `ci_low`/`ci_high` are None where nothing
    bounds the difference (one case, or scores without bounds and no spread)."""

    n: NonNegativeInt
    reference_mean: float | None
    candidate_mean: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    wins: NonNegativeInt
    ties: NonNegativeInt
    losses: NonNegativeInt
    p_value: float | None
    method: Literal["tango", "betting", "t", "bootstrap"] = Field(
        default="bootstrap",
        description="the interval: tango (Tango's score interval, 0/1 scores), betting (a betting interval, scores "
        "in 0..1), t (Student-t, scores without bounds); bootstrap in files written before it was recorded",
    )


class PairComparison(_Model):
    """A candidate variant against the reference, case by case."""

    reference: str
    candidate: str
    baseline_run_id: str | None = Field(default=None, description="set when the reference is a baseline report's")
    cases: NonNegativeInt = Field(description="cases both variants answered")
    errored: NonNegativeInt = Field(
        default=0, description="of those, cases left out because either side errored (errors count against the budget)"
    )
    metrics: dict[str, Difference]
    pass_rate: Difference = Field(description="the case-level pass (every metric passed) as 1/0 per case")
    flipped_to_fail: list[str] = Field(description="case ids the reference passed and the candidate did not")
    flipped_to_pass: list[str] = Field(description="case ids the reference did not pass and the candidate did")
    confidence: float
    resamples: NonNegativeInt = Field(description="the suite's compare.resamples (no bootstrap reads it any more)")
    seed: int = Field(description="seeds the order a betting interval bets on the cases in")


class CasesFile(_Model):
    """Report v5: where the report's cases are (a sidecar beside REPORT.json) and how to tell it is the right one."""

    path: str = Field(description="the sidecar's file name, in REPORT.json's folder")
    format: Literal["jsonl+gzip"] = Field(default="jsonl+gzip", description="one ReportCase a line, gzip-compressed")
    count: NonNegativeInt = Field(description="how many cases (lines) it holds")
    sha256: str = Field(description="sha256 of the compressed file")


class Report(_Model):
    """`REPORT.json`, written by `evaluator aggregate`: the single input of the gate, the reports and `plan`."""

    schema_version: Literal[
        "evaluator.report/v1", "evaluator.report/v2", "evaluator.report/v3", "evaluator.report/v4",
        "evaluator.report/v5",
    ] = Field(default=REPORT_SCHEMA, alias="schema")  # fmt: skip
    run_id: str | None
    suite: SuiteInfo = Field(default_factory=SuiteInfo)
    results_dir: str | None = None
    commit: str | None = None
    generated_at: str
    gate: Gate = Field(default_factory=Gate, description="the suite's gate, from the manifests")
    shards: Shards = Field(default_factory=Shards)
    problems: list[Problem] = Field(default_factory=list)
    totals: Totals
    metrics: dict[str, MetricSummary]
    latency: dict[str, LatencySummary] = Field(default_factory=dict)
    errors_by_kind: dict[str, NonNegativeInt] = Field(default_factory=dict)
    slowest_cases: list[SlowCase] = Field(default_factory=list)
    variants: dict[str, VariantSummary] = Field(
        default_factory=dict, description="v3: per variant, in the suite's order (`totals` counts every unit)"
    )
    reference: str | None = Field(default=None, description="v3: the variant the others are compared with")
    comparisons: list[PairComparison] = Field(default_factory=list, description="v3: each candidate vs reference")
    compare: CompareSettings = Field(default_factory=CompareSettings, description="v3: the comparison's settings")
    judge: JudgeInfo | None = Field(default=None, description="v3: the one judge of every variant")
    g_eval_steps: dict[str, list[str]] = Field(default_factory=dict, description="v3: the steps G-Eval used")
    profile: ProfileInfo | None = Field(default=None, description="v3: which cases ran")
    provenance: Provenance | None = Field(
        default=None, description="v4: what produced the numbers (the first shard's; `notes` name any that differ)"
    )
    notes: list[str] = Field(
        default_factory=list, description="v4: facts a reader should know that are no problem (mixed versions)"
    )
    cases_file: CasesFile | None = Field(
        default=None, description="v5: the sidecar holding `cases` (REPORT.json then has no `cases` field)"
    )
    cases: list[ReportCase] = Field(
        default_factory=list, description="every unit's outcome, in report order (v5: in `cases_file`, read on load)"
    )

    @model_serializer(mode="wrap")
    def _cases_in_sidecar(self, handler: SerializerFunctionWrapHandler) -> Any:
        """With a sidecar, the cases are written there, not here (REPORT.json stays a summary)."""
        data = handler(self)
        if isinstance(data, dict):
            if self.cases_file is not None:
                data.pop("cases", None)
            else:
                data.pop("cases_file", None)
        return data

    def durations(self) -> dict[str, float]:
        """Per-unit durations (keyed by `unit_key`), for 'balanced' sharding of the next run."""
        return {case.key: case.duration_s for case in self.cases}

    @property
    def variant_names(self) -> list[str]:
        """The variants in the suite's order (`default` for a report without variants)."""
        if self.variants:
            return list(self.variants)
        return list(dict.fromkeys(case.variant for case in self.cases)) or [DEFAULT_VARIANT]

    def cases_of(self, variant: str) -> list[ReportCase]:
        return [case for case in self.cases if case.variant == variant]


# --- reading and writing -------------------------------------------------------------------------------------
def to_json(model: BaseModel, *, indent: int | None = 1) -> str:
    """The file text of a model, with the `schema` field spelled as on disk."""
    return model.model_dump_json(by_alias=True, indent=indent)


def to_dict(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a model, as it is written."""
    return model.model_dump(mode="json", by_alias=True)


def _path(loc: tuple[int | str, ...]) -> str:
    """('cases', 3, 'metrics', 'm', 'score') -> 'cases[3].metrics.m.score'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(field path, message) of a validation error's first problem, e.g. ('cases[3].metrics.m.score', ...)."""
    errors = exc.errors()
    if not errors:
        return "", str(exc)
    return _path(tuple(errors[0]["loc"])), str(errors[0]["msg"])


def describe(exc: ValidationError, limit: int = 3) -> str:
    """The shallowest problems of a validation error (at most `limit`), each naming its field."""
    lines = []
    for item in sorted(exc.errors(), key=lambda e: len(e["loc"]))[:limit]:
        loc = tuple(item["loc"])
        if item["type"] == "missing":
            parent = _path(loc[:-1])
            lines.append(f"{parent + ': ' if parent else ''}missing field '{loc[-1]}'")
        else:
            lines.append(f"field '{_path(loc) or '(top level)'}': {item['msg']}")
    more = len(exc.errors()) - limit
    if more > 0:
        lines.append(f"and {more} more")
    return "; ".join(lines)


SCHEMA_MODELS: dict[str, type[BaseModel]] = {"result": ResultRecord, "manifest": Manifest, "report": Report}


def json_schemas() -> dict[str, str]:
    """File name -> text of the published JSON Schemas (docs/schemas/), generated from the models.

    Regenerate after changing a model: `python -m evaluator.contract docs/schemas`.
    """
    out = {}
    for name, model in SCHEMA_MODELS.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  **model.model_json_schema(by_alias=True, mode="validation")}  # fmt: skip
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def load_report(path: str | Path) -> Report:
    """Reads and validates a REPORT.json; every problem is an InputError naming the file and the field.

    v1 and v2 reports (before variants) load as they are, every case of variant `default`; a report from a newer
    evaluator, or a file that is no report, gets a message saying so.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{source}: cannot read: report not found") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from None
    report = report_from(content, str(source))
    if report.cases_file is not None:
        report.cases = list(read_cases(source.parent / report.cases_file.path, report.cases_file))
    return report


def cases_path(report_path: Path) -> Path:
    """The sidecar of a REPORT.json: `report.json` -> `report.cases.jsonl.gz`."""
    return report_path.with_name(f"{report_path.stem}.cases.jsonl.gz")


class _Hashing(io.RawIOBase):
    """A binary file that hashes what is written through it (the sidecar's checksum, without a second read)."""

    def __init__(self, target: io.BufferedWriter) -> None:
        self.target = target
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.target.write(data)


class CasesWriter:
    """Writes a report's cases into its sidecar as they come (atomically: a temp file renamed on `close`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = path.with_name(f".{path.name}.tmp")
        self._raw = self._temporary.open("wb")
        self._hashing = _Hashing(self._raw)
        # level 1: the aggregate's time is the budget; the case lines still shrink ~8x
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self._hashing, compresslevel=1, mtime=0)
        self._text = io.TextIOWrapper(self._gzip, encoding="utf-8", newline="\n", write_through=False)
        self.count = 0

    def write_json(self, line: str) -> None:
        """One case's JSON (a ReportCase, on one line)."""
        self._text.write(line)
        self._text.write("\n")
        self.count += 1

    def write(self, case: ReportCase) -> None:
        self.write_json(case.model_dump_json(by_alias=True))

    def close(self) -> CasesFile:
        """Finishes the file (fsync, rename) and returns what REPORT.json says about it."""
        self._text.flush()
        self._text.detach()
        self._gzip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        self._temporary.replace(self.path)
        return CasesFile(path=self.path.name, count=self.count, sha256=self._hashing.digest.hexdigest())

    def abandon(self) -> None:
        self._raw.close()
        self._temporary.unlink(missing_ok=True)


def write_cases(path: Path, cases: Iterable[ReportCase]) -> CasesFile:
    writer = CasesWriter(path)
    try:
        for case in cases:
            writer.write(case)
        return writer.close()
    except BaseException:
        writer.abandon()
        raise


def read_cases(path: Path, declared: CasesFile) -> Iterable[ReportCase]:
    """The cases of a v5 report's sidecar, checked against what REPORT.json declares (InputError otherwise)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            f"{path}: cannot read: the report's cases file is missing (copy it with REPORT.json)"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != declared.sha256:
        raise InputError(f"{path}: sha256 differs from the report's cases_file.sha256: not this report's cases")
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: not gzip-compressed JSON Lines: {exc}") from None
    del data
    lines = text.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    if len(lines) != declared.count:
        raise InputError(f"{path}: holds {len(lines)} cases, the report's cases_file.count says {declared.count}")
    for number, line in enumerate(lines, start=1):
        try:
            yield ReportCase.model_validate_json(line)
        except ValidationError as exc:
            raise InputError(f"{path}: line {number}: {describe(exc)}") from None


def report_from(content: Any, source: str = "<report>") -> Report:
    """Validates a parsed report (see `load_report`)."""
    if not isinstance(content, dict):
        raise InputError(f"{source}: top level must be a JSON object (an evaluator report)")
    schema = content.get("schema")
    if schema not in REPORT_SCHEMAS:
        hint = (
            "written by a newer evaluator; upgrade ai-eval-factory to read it"
            if isinstance(schema, str) and schema.startswith("evaluator.report/")
            else "not an evaluator report"
        )
        raise InputError(f"{source}: field 'schema' is {schema!r}, expected {REPORT_SCHEMA!r} ({hint})")
    if "cases" not in content and content.get("cases_file") is None:  # v5: one or the other, never neither
        raise InputError(f"{source}: missing field 'cases' (and no 'cases_file' naming where they are)")
    try:
        return Report.model_validate(content)
    except ValidationError as exc:
        raise InputError(f"{source}: {describe(exc)}") from None


if __name__ == "__main__":
    import sys

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, text in json_schemas().items():
        (folder / file_name).write_text(text, encoding="utf-8")
        print(folder / file_name)
