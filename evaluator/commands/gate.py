"""`evaluator gate`: 0 pass, 1 fail, 2 input error. The one line a pipeline needs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from evaluator.commands.common import handle_errors
from evaluator.contract import load_report
from evaluator.errors import EXIT_GATE_FAILED, EXIT_OK
from evaluator.gate import judge


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
    help="A previous REPORT.json; with the suite's regression_tolerance, a metric drop fails the gate.",
)
@handle_errors
def gate(report_file: Path, mode: str | None, baseline: Path | None) -> None:
    """Judge REPORT.json against the suite's gate.

    Fails closed: a missing, incomplete or corrupt shard, a duplicate case, or errors above the error budget can
    never pass, whatever the scores. Infrastructure errors are reported apart from quality failures.

    \b
    Exit codes: 0 pass (or failed in 'warn' mode), 1 gate failed, 2 usage or input error (a file that is no
    report, or a damaged one: the message names the file and the field).
    """
    report = load_report(report_file)
    verdict = judge(report, mode=mode, baseline=load_report(baseline) if baseline else None)
    for note in verdict.notes:
        click.echo(f"  {note}")
    if verdict.passed:
        click.echo(f"PASS: run {report.run_id}: {report.totals.cases} cases")
        sys.exit(EXIT_OK)
    for reason in verdict.reasons:
        click.echo(f"  - {reason}", err=True)
    if verdict.blocks:
        click.echo(f"FAIL: run {report.run_id}: {len(verdict.reasons)} reason(s)", err=True)
        sys.exit(EXIT_GATE_FAILED)
    click.echo(f"WARN: gate failed in warn mode ({len(verdict.reasons)} reason(s)); not blocking", err=True)
    sys.exit(EXIT_OK)
