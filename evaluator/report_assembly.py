"""REPORT.json's summary, assembled from the merged cases' tallies and what the manifests say of the run.

Apart from the aggregate's passes (aggregation.py) because it decides nothing about shards or records: it turns
tallies into the run's and each variant's numbers, the within-run comparisons, the shard timings and the wall time,
into one `Report`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from evaluator.compare import within_run
from evaluator.contract import CasesFile, Manifest, Problem, Report, ReportCase, Shards, SuiteInfo, VariantSummary
from evaluator.policy import DEFAULT_VARIANT, CompareSettings, Gate
from evaluator.tallies import Summaries


def compare_settings(first: Manifest | None) -> CompareSettings:
    """The run's comparison settings (its confidence level among them): the first manifest's, else the defaults."""
    return first.compare if first is not None else CompareSettings()


def build_report(
    summaries: Summaries,
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
    settings = compare_settings(first)
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
