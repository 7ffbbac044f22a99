"""Merge every shard folder into one report, and write down every reason not to trust it.

Fail closed: a missing, incomplete, corrupt or foreign shard, a damaged record or manifest, or a case counted
twice, is recorded in `problems` (with the file, line and field) and the gate refuses any report that has one.
Damage never stops the aggregate: a report that names what is wrong is more useful than a traceback. The
report is the single input of the gate, the reports (JUnit, Markdown, HTML), the baseline diff and `plan`.
"""

from __future__ import annotations

import heapq
import json
import math
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from evaluator.compare import within_run
from evaluator.contract import (
    CasesFile,
    CasesWriter,
    LatencySummary,
    Manifest,
    MetricSummary,
    Problem,
    Report,
    ReportCase,
    Shards,
    ShardTiming,
    SlowCase,
    SuiteInfo,
    Totals,
    VariantSummary,
    unit_key,
)
from evaluator.errors import InputError
from evaluator.formats.shard import _RecordHead
from evaluator.provenance import differences
from evaluator.results import (
    MANIFEST_FILE,
    RESULTS_FILE,
    ShardFile,
    file_sha256,
    read_manifest,
    scan_results,
    shard_dirs,
)
from evaluator.stats import percentile, score_interval, wilson_interval
from evaluator.suite import DEFAULT_VARIANT, CompareSettings, Gate


def _latency(values: list[float]) -> LatencySummary:
    return LatencySummary(
        count=len(values),
        mean=sum(values) / len(values) if values else None,
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        max=max(values) if values else None,
    )


class _Problems(list[Problem]):
    def add(
        self,
        kind: str,
        message: str,
        shard: int | None = None,
        file: Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.append(
            Problem(kind=kind, message=message, shard=shard, file=str(file) if file else None, line=line, field=field)
        )


class _CaseList:
    """Where the merged cases go when the caller wants them in memory (the Python API, tests)."""

    def __init__(self) -> None:
        self.cases: list[ReportCase] = []

    def add(self, case: dict[str, Any]) -> None:
        self.cases.append(ReportCase.model_validate(case))


class _CaseFile:
    """Where they go for `evaluator aggregate`: straight into the report's sidecar, one line at a time."""

    def __init__(self, path: Path) -> None:
        self.writer = CasesWriter(path)
        self._dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

    def add(self, case: dict[str, Any]) -> None:
        self.writer.write_json(self._dumps(case))


@dataclass
class _ShardScan:
    """What the first pass keeps of one shard: where each valid record is, not the record (memory is 8 bytes a
    line plus one int a record, whatever the record holds)."""

    index: int
    results_path: Path
    manifest: Manifest | None
    offsets: array[int] = field(default_factory=lambda: array("q"))
    lines: array[int] = field(default_factory=lambda: array("q"))
    case_indexes: array[int] = field(default_factory=lambda: array("q"))
    variant_ids: array[int] = field(default_factory=lambda: array("l"))
    order: list[int] = field(default_factory=list)
    cases: int = 0
    errored: int = 0
    stale: int = 0


def aggregate(
    out: Path, *, expect_shards: int | None = None, gate: Gate | None = None, cases_to: Path | None = None
) -> Report:
    """Builds the report of the run whose shard folders are under `out`.

    Two passes, so memory does not grow with what the records hold: the first validates every line of every
    shard and keeps only where each valid record is and its sort key (case index, variant); the second merges the
    shards in report order (a k-way merge of the per-shard sorted keys), reads each unit's records back, decides
    duplicates, adds the winner to running summaries and hands it on: to `cases_to` (the report's gzip sidecar,
    written as it goes; the returned report then has no `cases` in memory) or, without it, into `Report.cases`.
    """
    if not out.is_dir():
        raise InputError(f"{out}: not a directory")
    folders = list(shard_dirs(out))
    if not folders:
        raise InputError(f"{out}: no shard-NNNNN folders; did any `evaluator run --out {out}` happen?")
    problems = _Problems()
    manifests: dict[int, Manifest] = {}
    identities: Counter[tuple[str, str]] = Counter()
    totals_from_shards: Counter[int] = Counter()
    variant_ids: dict[str, int] = {}
    scans: list[_ShardScan] = []

    for index, folder in folders:
        results_path, manifest_path = folder / RESULTS_FILE, folder / MANIFEST_FILE
        read = read_manifest(manifest_path)
        manifest = read.manifest
        if manifest is None:
            if read.problem is not None:
                problems.add(
                    "invalid_manifest", f"shard {index}: {read.problem}", index, manifest_path, None, read.field
                )
            state = "has no manifest" if read.missing else "has an unreadable manifest"
            problems.add(
                "incomplete_shard", f"shard {index} {state}: it was killed or is still running", index, manifest_path
            )
        else:
            if manifest.state == "cancelled":
                stopped = f" by {manifest.stop.signal}" if manifest.stop is not None else ""
                done = manifest.counts.passed + manifest.counts.failed + manifest.counts.errored
                problems.add(
                    "incomplete_shard",
                    f"shard {index} was cancelled{stopped} after {done} of {manifest.counts.cases} units: re-run "
                    f"the same command to resume it",
                    index, manifest_path,
                )  # fmt: skip
            identities[(manifest.run_id, manifest.suite_hash)] += 1
            totals_from_shards[manifest.total_shards] += 1
            if results_path.exists() and file_sha256(results_path) != manifest.results_sha256:
                problems.add(
                    "checksum_mismatch", f"shard {index}: results changed after the manifest was written", index,
                    results_path,
                )  # fmt: skip
        scan = _ShardScan(index, results_path, manifest)
        unassigned = {unit_key(v, cid) for v, cid in manifest.units()} if manifest is not None else set()
        content = ShardFile()
        for line, offset, record in scan_results(results_path, content):
            identities[(record.run_id, record.suite_hash)] += 1
            if record.shard_index != index:
                problems.add(
                    "misplaced_record", f"record of shard {record.shard_index} found in shard {index}", index,
                    results_path, line,
                )  # fmt: skip
            unassigned.discard(unit_key(record.variant, record.case_id))
            scan.offsets.append(offset)
            scan.lines.append(line)
            scan.case_indexes.append(record.case_index)
            scan.variant_ids.append(variant_ids.setdefault(record.variant, len(variant_ids)))
        for bad in content.problems:
            problems.add(bad.kind, f"shard {index}: {bad.message}", index, results_path, bad.line, bad.field)
        if manifest is not None:
            if manifest.state != "cancelled":  # a cancelled shard's incomplete_shard problem says it already
                missing_cases = [(v, cid) for v, cid in manifest.units() if unit_key(v, cid) in unassigned]
                for variant, cid in missing_cases[:20]:
                    problems.add("missing_case", f"shard {index}: assigned {_unit(variant, cid)} has no result",
                                 index, results_path)  # fmt: skip
            # the case list is what the manifest weighs; nothing after this pass reads it
            manifests[index] = manifest.model_copy(update={"case_ids": [], "case_variants": []})
            scan.manifest = manifests[index]
        scans.append(scan)

    expected = expect_shards
    if expected is None and totals_from_shards:
        expected = max(totals_from_shards)
    if len(totals_from_shards) > 1:
        problems.add("mixed_shard_count", f"shards disagree on the shard count: {sorted(totals_from_shards)}")
    if expect_shards is not None and totals_from_shards and set(totals_from_shards) != {expect_shards}:
        problems.add("mixed_shard_count", f"expected {expect_shards} shards, shards say {sorted(totals_from_shards)}")
    present = {index for index, _ in folders}
    missing = sorted(set(range(expected or 0)) - present)
    for index in missing:
        problems.add("missing_shard", f"shard {index} of {expected} produced no folder", index)
    for index in sorted(i for i in present if expected is not None and i >= expected):
        problems.add("unexpected_shard", f"shard {index} is beyond the {expected} expected shards", index)

    run_ids = sorted({rid for rid, _ in identities})
    suites = sorted({sh for _, sh in identities})
    if len(run_ids) > 1:
        problems.add("mixed_run_id", f"shards belong to different runs: {', '.join(run_ids)}")
    if len(suites) > 1:
        problems.add(
            "mixed_suite", f"shards were run from different suite versions: {', '.join(s[:12] for s in suites)}"
        )

    _run_settings_agree(manifests, problems)
    first = next(iter(manifests.values()), None)
    variants = _variant_order(first, variant_ids)
    settings = first.compare if first is not None else CompareSettings()
    sink: _CaseList | _CaseFile = _CaseFile(cases_to) if cases_to is not None else _CaseList()
    summaries = _Summaries(variants, settings.confidence, keep_cases=len(variants) > 1)
    try:
        _merge(scans, variants, variant_ids, problems, sink, summaries)
        cases_file = sink.writer.close() if isinstance(sink, _CaseFile) else None
    except BaseException:
        if isinstance(sink, _CaseFile):
            sink.writer.abandon()
        raise

    per_shard = [
        ShardTiming(
            index=scan.index,
            cases=scan.cases,
            errored=scan.errored,
            started_at=scan.manifest.started_at,
            finished_at=scan.manifest.finished_at,
            wall_time_s=scan.manifest.wall_time_s,
            endpoints=scan.manifest.endpoints,
            state=scan.manifest.state,
            provenance=scan.manifest.provenance,
        )
        for scan in scans
        if scan.manifest is not None
    ]
    complete = sorted(i for i, m in manifests.items() if m.state == "complete")
    cancelled = sorted(i for i, m in manifests.items() if m.state == "cancelled")
    notes = _provenance_notes(per_shard)
    run_gate, gate_note = _latest_gate(manifests)
    notes += [gate_note] if gate_note else []
    return _build_report(
        summaries,
        cases=sink.cases if isinstance(sink, _CaseList) else [],
        cases_file=cases_file,
        problems=problems,
        run_id=first.run_id if first else (run_ids[0] if run_ids else None),
        suite=SuiteInfo(
            name=first.suite_name if first else None,
            hash=first.suite_hash if first else (suites[0] if suites else None),
            path=first.suite_path if first else None,
            max_calls_per_endpoint=first.max_calls_per_endpoint if first else None,
        ),
        results_dir=str(out),
        commit=first.commit if first else None,
        shards=Shards(
            expected=expected,
            complete=complete,
            missing=missing,
            incomplete=sorted(present - set(complete)),
            cancelled=cancelled,
            per_shard=per_shard,
        ),
        gate=gate or run_gate,
        first=first,
        variants=variants,
        notes=notes,
    )


_HEAD_FIELDS = frozenset(_RecordHead.model_fields) | {"schema", "scored_with", "rescored"}


def _merge(
    scans: list[_ShardScan],
    variants: list[str],
    variant_ids: dict[str, int],
    problems: _Problems,
    sink: _CaseList | _CaseFile,
    summaries: _Summaries,
) -> None:
    """The second pass: every unit's records in report order (case index, then the suite's variant order), the
    duplicate rules applied (within a shard the last record wins; across shards the first shard's), each winner
    summarised and handed to `sink` as a ReportCase's JSON."""
    position = {name: i for i, name in enumerate(variants)}
    rank = [0] * len(variant_ids)
    for name, vid in variant_ids.items():
        rank[vid] = position.get(name, len(variants))
    width = len(variants) + 1
    for scan in scans:  # one sorted int a record: (case index, variant rank, line) packed
        scan.order = sorted(
            ((ci * width + rank[vid]) << 32) | i
            for i, (ci, vid) in enumerate(zip(scan.case_indexes, scan.variant_ids, strict=True))
        )
        scan.case_indexes, scan.variant_ids = array("q"), array("l")
    handles = [scan.results_path.open("rb") if scan.order else None for scan in scans]
    try:

        def keyed(position_: int, scan: _ShardScan) -> Iterator[tuple[int, int, int]]:
            for packed in scan.order:
                yield packed >> 32, position_, packed & 0xFFFFFFFF

        merged = heapq.merge(*(keyed(p, scan) for p, scan in enumerate(scans)))
        for _, group in groupby(merged, key=lambda item: item[0]):
            units: dict[tuple[str, str], list[tuple[int, int, dict[str, Any]]]] = {}
            for _, where, i in group:
                handle = handles[where]
                assert handle is not None
                handle.seek(scans[where].offsets[i])
                record = json.loads(handle.readline())
                units.setdefault((record.get("variant", DEFAULT_VARIANT), record["case_id"]), []).append(
                    (where, scans[where].lines[i], record)
                )
            for (variant, case_id), records in units.items():
                winner = _decide(variant, case_id, records, scans, problems)
                case = {name: value for name, value in winner[2].items() if name not in _HEAD_FIELDS}
                case["variant"] = variant
                case["shard"] = scans[winner[0]].index
                summaries.add(case)
                sink.add(case)
    finally:
        for handle in handles:
            if handle is not None:
                handle.close()


def _decide(
    variant: str,
    case_id: str,
    records: list[tuple[int, int, dict[str, Any]]],
    scans: list[_ShardScan],
    problems: _Problems,
) -> tuple[int, int, dict[str, Any]]:
    """The record that stands for a unit (records in shard, then line order), and a problem for each duplicate."""
    kept: tuple[int, int, dict[str, Any]] | None = None
    for where, shard_records in groupby(records, key=lambda item: item[0]):
        scan = scans[where]
        latest: tuple[int, int, dict[str, Any]] | None = None
        for entry in shard_records:
            if latest is not None and latest[2].get("error") is None and not _rescores(entry[2], latest[2]):
                problems.add(
                    "duplicate_case",
                    f"{_unit(variant, case_id)} recorded twice in shard {scan.index} (lines {latest[1]} and "
                    f"{entry[1]})",
                    scan.index, scan.results_path, entry[1],
                )  # fmt: skip
            latest = entry
        assert latest is not None
        record = latest[2]
        scan.cases += 1
        scan.errored += record.get("error") is not None
        scoring = scan.manifest.scoring if scan.manifest is not None else {}
        if scoring and record.get("error") is None and record.get("scored_with", {}) != scoring:
            scan.stale += 1
            if scan.stale <= 20:  # an errored record kept by --keep-errors is counted as an error, whatever its scoring
                problems.add(
                    "stale_scoring",
                    f"shard {scan.index}: {_unit(variant, case_id)} was scored otherwise than its manifest says "
                    f"(metrics {sorted(record.get('scored_with', {}))} vs {sorted(scoring)})",
                    scan.index, scan.results_path, latest[1],
                )  # fmt: skip
        if kept is None:
            kept = latest
            continue
        problems.add(
            "duplicate_case",
            f"{_unit(variant, case_id)} in shard {scan.index} (line {latest[1]}) and shard {scans[kept[0]].index} "
            f"(line {kept[1]})",
            scan.index, scan.results_path, latest[1],
        )  # fmt: skip
    assert kept is not None
    return kept


def _unit(variant: str, case_id: str) -> str:
    """A unit as a message names it: the bare case id for the implicit variant, as the dataset names it."""
    return f"case {case_id!r}" + (f" of variant {variant!r}" if variant != DEFAULT_VARIANT else "")


def _variant_order(first: Manifest | None, seen: Iterable[str]) -> list[str]:
    """The suite's variant order (the manifests record every variant's target), else the order seen."""
    if first is not None and first.targets:
        return list(first.targets)
    return list(seen) or [DEFAULT_VARIANT]


def _rescores(record: dict[str, Any], earlier: dict[str, Any]) -> bool:
    """A later record of a unit that re-scores the earlier one (same answer, other scoring), not a duplicate."""
    return bool(
        record.get("rescored")
        and record.get("actual_output") == earlier.get("actual_output")
        and record.get("scored_with", {}) != earlier.get("scored_with", {})
    )


def _provenance_notes(per_shard: list[ShardTiming]) -> list[str]:
    """Each way a shard's provenance differs from the first shard's, named (the gate's hook reads the same)."""
    first = next((s.provenance for s in per_shard if s.provenance is not None), None)
    if first is None:
        return []
    return [
        mismatch.message
        for shard in per_shard
        if shard.provenance is not None
        for mismatch in differences(first, shard.provenance, f"shard {shard.index}")
    ]


def _latest_gate(manifests: dict[int, Manifest]) -> tuple[Gate, str | None]:
    """The gate of the most recently written manifest (the gate is no part of the results: a re-run with another
    gate rewrites only the manifests), and a note when the shards recorded different ones."""
    if not manifests:
        return Gate(), None
    newest = max(manifests.values(), key=lambda m: (m.finished_at, m.shard_index))
    others = sorted(i for i, m in manifests.items() if m.gate != newest.gate)
    if not others:
        return newest.gate, None
    return newest.gate, (
        f"shards {', '.join(map(str, others))} recorded another gate than the latest shard ({newest.shard_index}): "
        f"the latest one applies"
    )


def _run_settings_agree(manifests: dict[int, Manifest], problems: _Problems) -> None:
    """Every shard of a run selected the same cases and scored with the same metrics, G-Eval steps and judge."""
    for kind, label, value in (
        ("mixed_profile", "selected different cases (profile or dataset)",
         lambda m: (m.profile.name, m.profile.selection_sha256) if m.profile else None),
        ("mixed_g_eval_steps", "scored G-Eval with different evaluation steps", lambda m: m.g_eval_steps),
        ("mixed_judge", "used different judges or judge settings", lambda m: m.judge),
        ("mixed_scoring", "scored with different metrics, thresholds or DeepEval versions (re-run every shard "
         "with the same suite: the answers are re-scored, not asked again)", lambda m: m.scoring),
    ):  # fmt: skip
        seen: dict[str, list[int]] = {}
        for index, manifest in manifests.items():
            seen.setdefault(repr(value(manifest)), []).append(index)
        if len(seen) > 1:
            groups = "; ".join(f"shards {', '.join(map(str, indexes))}" for indexes in seen.values())
            problems.add(kind, f"the shards of this run {label}: {groups}")


def _build_report(
    summaries: _Summaries,
    *,
    cases: list[ReportCase],
    cases_file: CasesFile | None,
    problems: list[Problem],
    run_id: str | None,
    suite: SuiteInfo,
    results_dir: str,
    commit: str | None,
    shards: Shards,
    gate: Gate,
    first: Manifest | None = None,
    variants: list[str] | None = None,
    notes: list[str] | None = None,
) -> Report:
    variants = variants or [DEFAULT_VARIANT]
    settings = first.compare if first is not None else CompareSettings()
    starts = [p.started_at for p in shards.per_shard if p.started_at]
    ends = [p.finished_at for p in shards.per_shard if p.finished_at]
    wall = None
    if starts and ends:
        try:
            wall = (datetime.fromisoformat(max(ends)) - datetime.fromisoformat(min(starts))).total_seconds()
        except ValueError:
            problems.append(
                Problem(kind="invalid_manifest", message="a manifest's started_at/finished_at is no ISO time")
            )
    overall = summaries.overall.summary(settings.confidence)
    by_variant: dict[str, VariantSummary] = {}
    for name in variants:
        tally = summaries.by_variant[name]
        # one variant that holds every unit has the run's numbers: its intervals are not computed twice
        part = overall if tally.cases == summaries.overall.cases else tally.summary(settings.confidence)
        by_variant[name] = VariantSummary(
            target=first.targets.get(name) if first is not None else None,
            totals=part.totals,
            pass_rate_ci_low=part.pass_rate_ci[0],
            pass_rate_ci_high=part.pass_rate_ci[1],
            metrics=part.metrics,
            latency=part.latency,
            errors_by_kind=part.errors_by_kind,
        )
    reference = settings.reference or variants[0]
    return Report(
        run_id=run_id,
        suite=suite,
        results_dir=results_dir,
        commit=commit,
        generated_at=datetime.now(UTC).isoformat(),
        gate=gate,
        shards=shards,
        problems=problems,
        totals=overall.totals.model_copy(update={"wall_time_s": wall}),
        metrics=overall.metrics,
        latency=overall.latency,
        errors_by_kind=overall.errors_by_kind,
        slowest_cases=summaries.slowest(),
        variants=by_variant,
        reference=reference,
        comparisons=within_run(summaries.compared, variants, reference, settings),
        compare=settings,
        judge=first.judge if first is not None else None,
        g_eval_steps=first.g_eval_steps if first is not None else {},
        profile=first.profile if first is not None else None,
        provenance=first.provenance if first is not None else None,
        notes=notes or [],
        cases_file=cases_file,
        cases=cases,
    )


class _Summary:
    """Totals, metric summaries (with confidence intervals), latency and errors of a set of cases."""

    def __init__(
        self,
        totals: Totals,
        pass_rate_ci: tuple[float | None, float | None],
        metrics: dict[str, MetricSummary],
        latency: dict[str, LatencySummary],
        errors_by_kind: dict[str, int],
    ) -> None:
        self.totals = totals
        self.pass_rate_ci = pass_rate_ci
        self.metrics = metrics
        self.latency = latency
        self.errors_by_kind = errors_by_kind


class _Tally:
    """Running totals of a set of cases, fed one case (a ReportCase's JSON) at a time: counts, tokens, and the
    scores and latencies the percentiles and intervals need, kept as 8-byte floats."""

    def __init__(self) -> None:
        self.cases = self.passed = self.errored = 0
        self.prompt_tokens = self.completion_tokens = self.calls = 0
        self.metric_scores: dict[str, array[float]] = {}
        self.metric_pass: Counter[str] = Counter()
        self.metric_count: Counter[str] = Counter()
        self.metric_errors: Counter[str] = Counter()
        self.thresholds: dict[str, float] = {}
        self.latency: dict[str, array[float]] = {}
        self.errors_by_kind: Counter[str] = Counter()

    def add(self, case: dict[str, Any]) -> None:
        error = case.get("error")
        self.cases += 1
        if error is not None:
            self.errored += 1
            self.errors_by_kind[error["kind"]] += 1
        elif case["success"]:
            self.passed += 1
        for name, outcome in case["metrics"].items():
            threshold = outcome.get("threshold")
            if threshold is not None:
                self.thresholds.setdefault(name, threshold)
            if outcome.get("error"):
                self.metric_errors[name] += 1
                continue
            if error is not None:  # an errored case is left out of every quality number (compare.pair_up)
                continue
            self.metric_count[name] += 1
            score = outcome.get("score")
            if score is not None:
                self.metric_scores.setdefault(name, array("d")).append(score)
            if outcome["success"]:
                self.metric_pass[name] += 1
        for call in case["calls"]:
            self.calls += 1
            self.prompt_tokens += call.get("prompt_tokens", 0)
            self.completion_tokens += call.get("completion_tokens", 0)
            if not call.get("error"):
                self.latency.setdefault(call["type"], array("d")).append(call["latency_s"])

    def summary(self, confidence: float) -> _Summary:
        metrics = {}
        for name in sorted(set(self.metric_count) | set(self.metric_errors)):
            scores = list(self.metric_scores.get(name, ()))
            count = self.metric_count[name]
            mean = score_interval(scores, confidence) if scores else None
            rate = wilson_interval(self.metric_pass[name], count, confidence) if count else None
            metrics[name] = MetricSummary(
                count=count,
                errors=self.metric_errors[name],
                mean=sum(scores) / len(scores) if scores else None,
                p50=percentile(scores, 50),
                p95=percentile(scores, 95),
                pass_rate=self.metric_pass[name] / count if count else None,
                threshold=self.thresholds.get(name),
                ci_low=mean.low if mean is not None and math.isfinite(mean.low) else None,
                ci_high=mean.high if mean is not None and math.isfinite(mean.high) else None,
                pass_rate_ci_low=rate.low if rate is not None else None,
                pass_rate_ci_high=rate.high if rate is not None else None,
            )
        judged = self.cases - self.errored
        rate = wilson_interval(self.passed, judged, confidence) if judged else None
        return _Summary(
            totals=Totals(
                cases=self.cases,
                passed=self.passed,
                failed=self.cases - self.passed - self.errored,
                errored=self.errored,
                pass_rate=self.passed / judged if judged else None,
                error_rate=self.errored / self.cases if self.cases else None,
                wall_time_s=None,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=self.completion_tokens,
                calls=self.calls,
            ),
            pass_rate_ci=(rate.low, rate.high) if rate is not None else (None, None),
            metrics=metrics,
            latency={kind: _latency(list(values)) for kind, values in sorted(self.latency.items())},
            errors_by_kind=dict(self.errors_by_kind.most_common()),
        )


class _Summaries:
    """The run's tallies (overall and per variant), its ten slowest units, and, with variants, the cases the
    paired comparisons need (those pair each case's scores across variants, so they hold every case)."""

    SLOWEST = 10

    def __init__(self, variants: list[str], confidence: float, *, keep_cases: bool) -> None:
        self.overall = _Tally()
        self.by_variant = {name: _Tally() for name in variants}
        self.compared: list[ReportCase] = []
        self._keep = keep_cases
        self._slow: list[tuple[float, int, SlowCase]] = []
        self._seen = 0

    def add(self, case: dict[str, Any]) -> None:
        self.overall.add(case)
        tally = self.by_variant.get(case["variant"])
        if tally is not None:
            tally.add(case)
        self._seen += 1
        entry = (case["duration_s"], -self._seen)
        if len(self._slow) < self.SLOWEST or entry > self._slow[0][:2]:
            slow = SlowCase(case_id=unit_key(case["variant"], case["case_id"]), shard=case["shard"],
                            duration_s=case["duration_s"])  # fmt: skip
            item = (*entry, slow)
            if len(self._slow) < self.SLOWEST:
                heapq.heappush(self._slow, item)
            else:
                heapq.heapreplace(self._slow, item)
        if self._keep:
            self.compared.append(ReportCase.model_validate(case))

    def slowest(self) -> list[SlowCase]:
        """Longest first; among equal durations, the earlier in report order (a stable sort's order)."""
        return [slow for _, _, slow in sorted(self._slow, key=lambda item: (-item[0], -item[1]))]
