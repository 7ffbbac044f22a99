"""`evaluator gate`: 0 pass, 1 fail, 2 input error. The one line a pipeline needs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from evaluator.commands.common import handle_errors, tolerance_option
from evaluator.contract import load_report
from evaluator.errors import EXIT_GATE_FAILED, EXIT_OK
from evaluator.gate import apply_gate


@click.command()
@click.argument("report_file", metavar="REPORT.json", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--mode",
    type=click.Choice(["block", "warn"]),
    default=None,
    help="Override the suite's gate mode; 'warn' reports a failure but exits 0.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A previous REPORT.json to compare with (matched case by case, variant by variant): with the suite's "
    "regression_tolerance a drop fails the gate. A baseline of another profile is compared on the shared cases.",
)
@click.option(
    "--policy",
    type=click.Choice(["absolute", "no_regression"]),
    default=None,
    help="Override the suite's gate.policy: absolute thresholds, or no regression against the reference "
    "variant (or --baseline) beyond the tolerance, decided on confidence intervals.",
)
@tolerance_option(
    "Override the suite's gate.regression_tolerance: the largest drop (0-1 scale) accepted against the "
    "reference or --baseline."
)
@click.option(
    "--min-pass-rate",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Override the suite's gate.min_pass_rate (policy absolute, and no_regression with nothing to compare).",
)
@click.option(
    "--allow-mixed-versions",
    is_flag=True,
    help="Compare under no_regression even when the judge (model, weights, revision) or DeepEval's version "
    "differs between the shards or from the baseline (INCONCLUSIVE otherwise); the difference is still noted.",
)
@handle_errors
def gate(
    report_file: Path,
    mode: str | None,
    baseline: Path | None,
    policy: str | None,
    tolerance: float | None,
    min_pass_rate: float | None,
    allow_mixed_versions: bool,
) -> None:
    """Apply the suite's gate to REPORT.json.

    Fails closed: a missing, incomplete or corrupt shard, a duplicate case, or errors above the error budget can
    never pass, whatever the scores. Infrastructure errors are reported apart from quality failures.

    With policy no_regression a candidate fails only when the confidence interval of its paired difference
    from the reference lies below -tolerance; when the interval straddles it the verdict is INCONCLUSIVE and
    says how many more cases would decide it. INCONCLUSIVE blocks like a failure (exit 1: not shown to be
    safe) unless the suite's gate says `inconclusive: warn` or --mode warn is given (exit 0, WARN);
    --mode block makes it block whatever the suite says.

    Every gate setting can be overridden here without re-running anything (the gate is no part of the run):
    --policy, --tolerance, --min-pass-rate, --mode. The first line printed names each setting used and where it
    came from, e.g. `gate: policy absolute (suite), min_pass_rate 0.7 (--min-pass-rate), ...`.

    \b
    Exit codes: 0 pass (or a failure that does not block: warn), 1 gate failed or inconclusive (blocking),
    2 usage or input error (a file that is no report, or a damaged one: the message names the file and field).
    """
    report = load_report(report_file)
    verdict = apply_gate(
        report,
        mode=mode,
        baseline=load_report(baseline) if baseline else None,
        policy=policy,
        tolerance=tolerance,
        min_pass_rate=min_pass_rate,
        allow_mixed_versions=allow_mixed_versions,
    )
    if verdict.settings is not None:
        click.echo(verdict.settings.describe())
    for note in verdict.notes:
        click.echo(f"  {note}")
    if verdict.passed:
        click.echo(f"PASS: run {report.run_id}: {report.totals.cases} cases ({verdict.policy})")
        sys.exit(EXIT_OK)
    for line in verdict.lines():
        click.echo(line, err=True)
    counts = f"{len(verdict.reasons)} failure(s), {len(verdict.inconclusive)} inconclusive"
    if verdict.blocks:
        click.echo(f"{verdict.label}: run {report.run_id}: {counts}", err=True)
        sys.exit(EXIT_GATE_FAILED)
    click.echo(f"WARN: gate {verdict.label} ({counts}); not blocking", err=True)
    sys.exit(EXIT_OK)
