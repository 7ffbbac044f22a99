"""`evaluator report`: JUnit, Markdown and HTML reports from one REPORT.json, and its summary on the terminal.

Only `--html` needs the 'report' extra (plotly, jinja2); without it that option exits 2 with the install
command, and everything else works on the base install.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from evaluator.commands.common import handle_errors, tolerance_option
from evaluator.contract import load_report
from evaluator.errors import EXIT_GATE_FAILED, InputError
from evaluator.extras import require_report_extra
from evaluator.gate import against_baseline_verdict
from evaluator.reporting.api import write_reports
from evaluator.reporting.terminal import make_console, print_summary

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.argument("report_file", metavar="REPORT.json", type=_FILE)
@click.option("--baseline", type=_FILE, help="A previous REPORT.json to compare with, case by case.")
@tolerance_option(
    "Largest drop (0-1 scale) of a metric or the pass rate accepted against --baseline"
    " [default: the suite's gate.regression_tolerance, else 0]."
)
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 1 when the comparison with --baseline blocks, by the gate's own rule (`evaluator gate --baseline "
    "--policy no_regression`): a metric or the pass rate whose interval lies below -tolerance, or one that cannot "
    "be decided (INCONCLUSIVE) unless the suite's gate says `inconclusive: warn`.",
)
@click.option("--junit", "junit_path", type=_FILE, help="Write JUnit XML for Jenkins' junit step.")
@click.option("--markdown", "markdown_path", type=_FILE, help="Write the pull-request comment (Markdown).")
@click.option(
    "--html",
    "html_path",
    type=_FILE,
    help="Write the self-contained HTML report with plots (needs the 'report' extra).",
)
@click.option("--history", "history_path", type=_FILE, help="Append this run's summary to a JSONL history file.")
@click.option(
    "--price-per-1k-tokens",
    type=click.FloatRange(0.0),
    default=0.0,
    envvar="EVAL_PRICE_PER_1K_TOKENS",
    show_default=True,
    help="Price of 1,000 tokens for the history's estimated cost (env EVAL_PRICE_PER_1K_TOKENS).",
)
@click.option("--suite", "suite_path", default=None, help="Suite path shown in the re-run command [SUITE.yaml].")
@click.option("--results-dir", default=None, help="Results folder shown in the re-run command [DIR].")
@click.option("-q", "--quiet", is_flag=True, help="Do not print the summary table.")
@handle_errors
def report(
    report_file: Path,
    baseline: Path | None,
    tolerance: float | None,
    fail_on_regression: bool,
    junit_path: Path | None,
    markdown_path: Path | None,
    html_path: Path | None,
    history_path: Path | None,
    price_per_1k_tokens: float,
    suite_path: str | None,
    results_dir: str | None,
    quiet: bool,
) -> None:
    """Write JUnit, Markdown and HTML reports (as asked) from REPORT.json and print its summary.

    \b
    Exit codes: 0 written, 1 --fail-on-regression and the baseline comparison blocks (a regression, or an
    inconclusive comparison under `inconclusive: block`), 2 usage or input error.
    """
    if fail_on_regression and baseline is None:
        raise InputError("--fail-on-regression needs --baseline (a previous REPORT.json to compare with)")
    if html_path is not None:
        require_report_extra("evaluator report --html")
    data = load_report(report_file)
    base = load_report(baseline) if baseline else None
    written = write_reports(
        data,
        baseline=base,
        tolerance=tolerance,
        junit_path=junit_path,
        markdown_path=markdown_path,
        html_path=html_path,
        history_path=history_path,
        price_per_1k_tokens=price_per_1k_tokens,
        suite_path=suite_path,
        out_dir=results_dir,
    )
    console = make_console(stderr=True)
    if not quiet:
        print_summary(data, console=console, comparison=written.comparison)
    for kind, path in written.files:
        note = ""
        if kind == "history" and written.history_appended is False:
            note = " (run already recorded, not appended again)"
        console.print(f"wrote {kind}: {path}{note}", highlight=False)
    if fail_on_regression and base is not None:
        verdict = against_baseline_verdict(data, base, tolerance=tolerance)
        for line in verdict.lines():
            click.echo(line, err=True)
        if verdict.blocks:
            click.echo(f"{verdict.label}: run {data.run_id} against baseline {base.run_id or 'baseline'}", err=True)
            sys.exit(EXIT_GATE_FAILED)
