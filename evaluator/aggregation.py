"""Merge every shard folder into one report, and write down every reason not to trust it.

Fail closed: a missing, incomplete, corrupt or foreign shard, a damaged record or manifest, or a case counted
twice, is recorded in `problems` (with the file, line and field) and the gate refuses any report that has one.
Damage never stops the aggregate: a report that names what is wrong is more useful than a traceback. The
report is the single input of the gate, the reports (JUnit, Markdown, HTML), the baseline diff and `plan`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from evaluator.compare import within_run
from evaluator.contract import (
    LatencySummary,
    Manifest,
    MetricSummary,
    Problem,
    Report,
    ReportCase,
    ResultRecord,
    Shards,
    ShardTiming,
    SlowCase,
    SuiteInfo,
    Totals,
    VariantSummary,
    unit_key,
)
from evaluator.errors import InputError
from evaluator.provenance import differences
from evaluator.results import MANIFEST_FILE, RESULTS_FILE, file_sha256, read_manifest, read_results, shard_dirs
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


def aggregate(out: Path, *, expect_shards: int | None = None, gate: Gate | None = None) -> Report:
    """Builds the report of the run whose shard folders are under `out`."""
    if not out.is_dir():
        raise InputError(f"{out}: not a directory")
    folders = list(shard_dirs(out))
    if not folders:
        raise InputError(f"{out}: no shard-NNNNN folders; did any `evaluator run --out {out}` happen?")
    problems = _Problems()
    manifests: dict[int, Manifest] = {}
    cases: dict[str, ReportCase] = {}
    case_origin: dict[str, tuple[int, int]] = {}
    per_shard: list[ShardTiming] = []
    identities: Counter[tuple[str, str]] = Counter()
    totals_from_shards: Counter[int] = Counter()

    for index, folder in folders:
        results_path, manifest_path = folder / RESULTS_FILE, folder / MANIFEST_FILE
        read = read_manifest(manifest_path)
        content = read_results(results_path)
        for bad in content.problems:
            problems.add(bad.kind, f"shard {index}: {bad.message}", index, results_path, bad.line, bad.field)
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
            manifests[index] = manifest
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
        shard_latest: dict[str, tuple[ResultRecord, int]] = {}
        for record, line in zip(content.records, content.lines, strict=True):
            identities[(record.run_id, record.suite_hash)] += 1
            if record.shard_index != index:
                problems.add(
                    "misplaced_record", f"record of shard {record.shard_index} found in shard {index}", index,
                    results_path, line,
                )  # fmt: skip
            key = unit_key(record.variant, record.case_id)
            previous = shard_latest.get(key)
            if previous is not None and previous[0].error is None and not _rescores(record, previous[0]):
                problems.add(
                    "duplicate_case",
                    f"{_unit(record.variant, record.case_id)} recorded twice in shard {index} (lines {previous[1]} "
                    f"and {line})",
                    index, results_path, line,
                )  # fmt: skip
            shard_latest[key] = (record, line)
        for key, (record, line) in shard_latest.items():
            if key in case_origin:
                other_shard, other_line = case_origin[key]
                problems.add(
                    "duplicate_case",
                    f"{_unit(record.variant, record.case_id)} in shard {index} (line {line}) and shard "
                    f"{other_shard} (line {other_line})",
                    index, results_path, line,
                )  # fmt: skip
                continue
            case_origin[key] = (index, line)
            cases[key] = ReportCase.model_construct(
                **{name: getattr(record, name) for name in ReportCase.model_fields if name != "shard"}, shard=index
            )
        if manifest is not None and manifest.scoring:
            stale = [  # an errored record kept by --keep-errors is counted as an error, whatever its scoring
                (r, line) for r, line in shard_latest.values() if r.error is None and r.scored_with != manifest.scoring
            ]
            for record, line in stale[:20]:
                problems.add(
                    "stale_scoring",
                    f"shard {index}: {_unit(record.variant, record.case_id)} was scored otherwise than its manifest "
                    f"says (metrics {sorted(record.scored_with)} vs {sorted(manifest.scoring)})",
                    index, results_path, line,
                )  # fmt: skip
        if manifest is not None:
            missing_cases = [(v, cid) for v, cid in manifest.units() if unit_key(v, cid) not in shard_latest]
            if manifest.state == "cancelled":
                missing_cases = []  # the incomplete_shard problem says it: the rest was never run
            for variant, cid in missing_cases[:20]:
                problems.add("missing_case", f"shard {index}: assigned {_unit(variant, cid)} has no result", index,
                             results_path)  # fmt: skip
            per_shard.append(
                ShardTiming(
                    index=index,
                    cases=len(shard_latest),
                    errored=sum(1 for r, _ in shard_latest.values() if r.error is not None),
                    started_at=manifest.started_at,
                    finished_at=manifest.finished_at,
                    wall_time_s=manifest.wall_time_s,
                    endpoints=manifest.endpoints,
                    state=manifest.state,
                    provenance=manifest.provenance,
                )
            )

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
    complete = sorted(i for i, m in manifests.items() if m.state == "complete")
    cancelled = sorted(i for i, m in manifests.items() if m.state == "cancelled")
    notes = _provenance_notes(per_shard)
    run_gate, gate_note = _latest_gate(manifests)
    notes += [gate_note] if gate_note else []
    variants = _variant_order(first, cases.values())
    position = {name: i for i, name in enumerate(variants)}
    ordered = sorted(cases.values(), key=lambda r: (r.case_index, r.case_id, position.get(r.variant, len(variants))))
    return _build_report(
        ordered,
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


def _unit(variant: str, case_id: str) -> str:
    """A unit as a message names it: the bare case id for the implicit variant, as the dataset names it."""
    return f"case {case_id!r}" + (f" of variant {variant!r}" if variant != DEFAULT_VARIANT else "")


def _variant_order(first: Manifest | None, cases: Iterable[ReportCase]) -> list[str]:
    """The suite's variant order (the manifests record every variant's target), else the order seen."""
    if first is not None and first.targets:
        return list(first.targets)
    return list(dict.fromkeys(case.variant for case in cases)) or [DEFAULT_VARIANT]


def _rescores(record: ResultRecord, earlier: ResultRecord) -> bool:
    """A later record of a unit that re-scores the earlier one (same answer, other scoring), not a duplicate."""
    return (
        record.rescored and record.actual_output == earlier.actual_output and record.scored_with != earlier.scored_with
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
    ordered: list[ReportCase],
    *,
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
    overall = _summarize(ordered, settings.confidence)
    by_variant: dict[str, VariantSummary] = {}
    for name in variants:
        part = _summarize([c for c in ordered if c.variant == name], settings.confidence)
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
    slowest = sorted(ordered, key=lambda r: -r.duration_s)[:10]
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
        slowest_cases=[SlowCase(case_id=r.key, shard=r.shard, duration_s=r.duration_s) for r in slowest],
        variants=by_variant,
        reference=reference,
        comparisons=within_run(ordered, variants, reference, settings),
        compare=settings,
        judge=first.judge if first is not None else None,
        g_eval_steps=first.g_eval_steps if first is not None else {},
        profile=first.profile if first is not None else None,
        provenance=first.provenance if first is not None else None,
        notes=notes or [],
        cases=ordered,
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


def _summarize(ordered: list[ReportCase], confidence: float) -> _Summary:
    errored = [r for r in ordered if r.error is not None]
    passed = [r for r in ordered if r.success and r.error is None]
    judged = len(ordered) - len(errored)
    metric_scores: dict[str, list[float]] = {}
    metric_pass: Counter[str] = Counter()
    metric_count: Counter[str] = Counter()
    metric_errors: Counter[str] = Counter()
    thresholds: dict[str, float] = {}
    latency: dict[str, list[float]] = {}
    errors_by_kind: Counter[str] = Counter()
    prompt_tokens = completion_tokens = calls = 0
    for record in ordered:
        if record.error is not None:
            errors_by_kind[record.error.kind] += 1
        for name, outcome in record.metrics.items():
            if outcome.threshold is not None:
                thresholds.setdefault(name, outcome.threshold)
            if outcome.error:
                metric_errors[name] += 1
                continue
            if record.error is not None:  # an errored case is left out of every quality number (compare.pair_up)
                continue
            metric_count[name] += 1
            if outcome.score is not None:
                metric_scores.setdefault(name, []).append(outcome.score)
            if outcome.success:
                metric_pass[name] += 1
        for call in record.calls:
            calls += 1
            prompt_tokens += call.prompt_tokens
            completion_tokens += call.completion_tokens
            if not call.error:
                latency.setdefault(call.type, []).append(call.latency_s)
    metrics = {}
    for name in sorted(set(metric_count) | set(metric_errors)):
        scores = metric_scores.get(name, [])
        mean = score_interval(scores, confidence) if scores else None
        rate = wilson_interval(metric_pass[name], metric_count[name], confidence) if metric_count[name] else None
        metrics[name] = MetricSummary(
            count=metric_count[name],
            errors=metric_errors[name],
            mean=sum(scores) / len(scores) if scores else None,
            p50=percentile(scores, 50),
            p95=percentile(scores, 95),
            pass_rate=metric_pass[name] / metric_count[name] if metric_count[name] else None,
            threshold=thresholds.get(name),
            ci_low=mean.low if mean is not None and math.isfinite(mean.low) else None,
            ci_high=mean.high if mean is not None and math.isfinite(mean.high) else None,
            pass_rate_ci_low=rate.low if rate is not None else None,
            pass_rate_ci_high=rate.high if rate is not None else None,
        )
    rate = wilson_interval(len(passed), judged, confidence) if judged else None
    return _Summary(
        totals=Totals(
            cases=len(ordered),
            passed=len(passed),
            failed=len(ordered) - len(passed) - len(errored),
            errored=len(errored),
            pass_rate=len(passed) / judged if judged else None,
            error_rate=len(errored) / len(ordered) if ordered else None,
            wall_time_s=None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            calls=calls,
        ),
        pass_rate_ci=(rate.low, rate.high) if rate is not None else (None, None),
        metrics=metrics,
        latency={kind: _latency(values) for kind, values in sorted(latency.items())},
        errors_by_kind=dict(errors_by_kind.most_common()),
    )
