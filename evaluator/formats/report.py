"""`REPORT.json`: the merged result of every shard, the single input of the gate, the reports and `capacity`."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, ValidationError, model_serializer

from evaluator.errors import InputError
from evaluator.formats.base import (
    REPORT_SCHEMA,
    REPORT_SCHEMAS,
    FileModel,
    NonNegativeFloat,
    NonNegativeInt,
    describe,
    unit_key,
)
from evaluator.formats.shard import (
    CaseOutcome,
    EndpointSummary,
    JudgeInfo,
    ProfileInfo,
    Provenance,
    TargetInfo,
)
from evaluator.gcpause import paused_gc
from evaluator.policy import DEFAULT_VARIANT, CompareSettings, Gate


class SuiteInfo(FileModel):
    name: str | None = None
    hash: str | None = None
    path: str | None = None
    max_calls_per_endpoint: int | None = None


class ShardTiming(FileModel):
    index: NonNegativeInt
    cases: NonNegativeInt
    errored: NonNegativeInt
    started_at: str | None = None
    finished_at: str | None = None
    wall_time_s: NonNegativeFloat | None = None
    endpoints: dict[str, EndpointSummary] = Field(default_factory=dict, description="its manifest's endpoints")
    state: Literal["complete", "cancelled"] = Field(default="complete", description="the shard's manifest state")
    provenance: Provenance | None = Field(default=None, description="the shard's provenance")


class Shards(FileModel):
    expected: NonNegativeInt | None = None
    complete: list[int] = Field(default_factory=list)
    missing: list[int] = Field(default_factory=list)
    incomplete: list[int] = Field(default_factory=list)
    cancelled: list[int] = Field(default_factory=list, description="incomplete shards stopped by a signal")
    per_shard: list[ShardTiming] = Field(default_factory=list)


class Problem(FileModel):
    """A reason not to trust the report; the gate refuses any report that has one."""

    kind: str = Field(
        description="missing_shard, incomplete_shard, unexpected_shard, duplicate_case, corrupt_line, "
        "truncated_line, invalid_record, invalid_manifest, misplaced_record, mixed_run_id, mixed_suite, "
        "mixed_shard_count, checksum_mismatch, missing_case, mixed_profile, mixed_g_eval_steps, mixed_judge, "
        "mixed_scoring, stale_scoring"
    )
    message: str
    shard: int | None = None
    file: str | None = None
    line: int | None = None
    field: str | None = Field(default=None, description="the damaged field, dotted")


class Totals(FileModel):
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


class MetricSummary(FileModel):
    count: NonNegativeInt
    errors: NonNegativeInt
    mean: float | None
    pass_rate: float | None
    p50: float | None
    p95: float | None
    threshold: float | None
    ci_low: float | None = Field(
        default=None,
        description="the mean's confidence interval: Wilson for 0/1 scores, a betting interval for scores in "
        "0..1 (within 0..1), Student-t for scores without bounds",
    )
    ci_high: float | None = None
    pass_rate_ci_low: float | None = Field(default=None, description="the pass rate's Wilson interval")
    pass_rate_ci_high: float | None = None


class LatencySummary(FileModel):
    count: NonNegativeInt
    mean: float | None
    p50: float | None
    p95: float | None
    max: float | None


class SlowCase(FileModel):
    case_id: str
    shard: int
    duration_s: float | None


class ReportCase(CaseOutcome):
    """A case in the report: its outcome and the shard that evaluated it."""

    shard: int

    @property
    def key(self) -> str:
        return unit_key(self.variant, self.case_id)


class VariantSummary(FileModel):
    """One variant's numbers: what the leaderboard shows."""

    target: TargetInfo | None = None
    totals: Totals
    pass_rate_ci_low: float | None = Field(default=None, description="Wilson interval of the case pass rate")
    pass_rate_ci_high: float | None = None
    metrics: dict[str, MetricSummary]
    latency: dict[str, LatencySummary] = Field(default_factory=dict)
    errors_by_kind: dict[str, NonNegativeInt] = Field(default_factory=dict)


class Difference(FileModel):
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


class PairComparison(FileModel):
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
    resamples: NonNegativeInt = Field(description="the suite's compare.resamples, as given")
    seed: int = Field(description="seeds the order a betting interval bets on the cases in")


class CasesFile(FileModel):
    """Where a v5 report's cases are (a file beside REPORT.json) and how to tell it is the right one."""

    path: str = Field(description="the cases file's name, in REPORT.json's folder")
    format: Literal["jsonl+gzip"] = Field(default="jsonl+gzip", description="one ReportCase a line, gzip-compressed")
    count: NonNegativeInt = Field(description="how many cases (lines) it holds")
    sha256: str = Field(description="sha256 of the compressed file")


class Report(FileModel):
    """`REPORT.json`, written by `evaluator aggregate`: the single input of the gate, the reports and `capacity`."""

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
        default_factory=dict, description="per variant, in the suite's order (`totals` counts every unit)"
    )
    reference: str | None = Field(default=None, description="the variant the others are compared with")
    comparisons: list[PairComparison] = Field(default_factory=list, description="each candidate vs reference")
    compare: CompareSettings = Field(default_factory=CompareSettings, description="the comparison's settings")
    judge: JudgeInfo | None = Field(default=None, description="the one judge of every variant")
    g_eval_steps: dict[str, list[str]] = Field(default_factory=dict, description="the steps G-Eval used")
    profile: ProfileInfo | None = Field(default=None, description="which cases ran")
    provenance: Provenance | None = Field(
        default=None, description="what produced the numbers (the first shard's; `notes` name any that differ)"
    )
    notes: list[str] = Field(
        default_factory=list, description="facts a reader should know that are no problem (mixed versions)"
    )
    cases_file: CasesFile | None = Field(
        default=None, description="the file holding `cases` (REPORT.json then has no `cases` field)"
    )
    cases: list[ReportCase] = Field(
        default_factory=list, description="every unit's outcome, in report order (v5: in `cases_file`, read on load)"
    )

    @model_serializer(mode="wrap")
    def _cases_in_their_file(self, handler: SerializerFunctionWrapHandler) -> Any:
        """With a cases file, the cases are written there, not here (REPORT.json stays a summary)."""
        data = handler(self)
        if isinstance(data, dict):
            if self.cases_file is not None:
                data.pop("cases", None)
            else:
                data.pop("cases_file", None)
        return data

    def __eq__(self, other: object) -> bool:
        """Reports are equal when they say the same: where the cases are stored (`cases_file`) is not part of it,
        so a report written and loaded again equals the one in memory."""
        if not isinstance(other, Report):
            return NotImplemented
        mine = {k: v for k, v in self.__dict__.items() if k != "cases_file"}
        return mine == {k: v for k, v in other.__dict__.items() if k != "cases_file"}

    __hash__ = None  # type: ignore[assignment]  # mutable, as pydantic's models are

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
        with paused_gc():  # see gcpause: collections over the growing list of cases found nothing to free
            report.cases = list(read_cases(source.parent / report.cases_file.path, report.cases_file))
    return report


def cases_path(report_path: Path) -> Path:
    """The cases file of a REPORT.json: `report.json` -> `report.cases.jsonl.gz`."""
    return report_path.with_name(f"{report_path.stem}.cases.jsonl.gz")


class _Hashing(io.RawIOBase):
    """A binary file that hashes what is written through it (the checksum, without a second read)."""

    def __init__(self, target: io.BufferedWriter) -> None:
        self.target = target
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.target.write(data)


class CasesWriter:
    """Writes a report's cases into its file as they come (atomically: a temp file renamed on `close`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = path.with_name(f".{path.name}.tmp")
        self._raw = self._temporary.open("wb")
        self._hashing = _Hashing(self._raw)
        # level 1: the aggregate's time is the budget; the case lines still shrink ~8x
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self._hashing, compresslevel=1, mtime=0)
        self._pending: list[bytes | memoryview] = []  # lines handed to gzip 64 kB at a time, not one call a line
        self._pending_bytes = 0
        self.count = 0

    def write_json(self, line: str) -> None:
        """One case's JSON (a ReportCase, on one line)."""
        self.write_bytes(line.encode("utf-8"))

    def write_bytes(self, line: bytes) -> None:
        """One case's JSON as UTF-8 bytes (a ReportCase, on one line)."""
        self._pending.append(line)
        self._pending_bytes += len(line)
        self.count += 1
        if self._pending_bytes >= 1 << 16:
            self._flush()

    def write_block(self, block: bytes, lengths: Sequence[int]) -> None:
        """Cases' JSON lines already joined, each followed by a newline (`lengths`: each line's, without it): the
        same file, byte for byte, as `write_bytes` of each line (gzip is handed the same pieces)."""
        if len(block) != sum(lengths) + len(lengths):
            raise ValueError("the lengths do not add up to the block")
        view = memoryview(block)
        start = end = 0
        pending = self._pending_bytes
        for length in lengths:
            end += length + 1
            pending += length
            if pending >= 1 << 16:
                self._pending.append(view[start : end - 1])  # joined on newlines, like the lines it stands for
                self._flush()
                start, pending = end, 0
        if start < end:
            self._pending.append(view[start : end - 1])
        self._pending_bytes = pending
        self.count += len(lengths)

    def _flush(self) -> None:
        if self._pending:
            self._pending.append(b"")
            self._gzip.write(b"\n".join(self._pending))
            self._pending, self._pending_bytes = [], 0

    def write(self, case: ReportCase) -> None:
        self.write_json(case.model_dump_json(by_alias=True))

    def close(self) -> CasesFile:
        """Finishes the file (fsync, rename) and returns what REPORT.json says about it."""
        self._flush()
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
    """The cases of a v5 report's cases file, checked against what REPORT.json declares (InputError otherwise).

    Every line is validated as a ReportCase, as any file a user hands over is: the sha256 only tells that this is
    the file REPORT.json names (not another run's, not cut short), not that both were written by the evaluator.
    Validating costs no more than parsing (pydantic builds the models straight from the JSON; `json.loads` plus
    `model_construct` was slower, bench/README.md), so there is no unchecked fast path. The file is hashed from its
    compressed bytes, then decompressed a line at a time: the decompressed text (~600 bytes a case) is never held.
    """
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
    number = 0
    with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as lines:
        while True:
            try:
                line = lines.readline()
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(f"{path}: not gzip-compressed JSON Lines: {exc}") from None
            if not line:
                break
            number += 1
            if number > declared.count:
                break
            try:
                yield ReportCase.model_validate_json(line)
            except ValidationError as exc:
                raise InputError(f"{path}: line {number}: {describe(exc)}") from None
        if number != declared.count:
            held = f"{number}"
            if number > declared.count:
                try:
                    held = f"{number + sum(1 for _ in lines)}"
                except (OSError, EOFError, zlib.error):
                    held = f"more than {declared.count}"
            raise InputError(f"{path}: holds {held} cases, the report's cases_file.count says {declared.count}")


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
