"""`evaluator report`, `evaluator trend`, `evaluator plan`: the click commands over evaluator.reporting.

Only `--html` needs the 'report' extra (plotly, jinja2); without it that one option exits 2 with the install
command, and everything else works on the base install.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console

from evaluator.commands.common import handle_errors
from evaluator.contract import load_report
from evaluator.errors import EXIT_GATE_FAILED, InputError
from evaluator.extras import require_report_extra
from evaluator.gate import against_baseline_verdict
from evaluator.reporting import history
from evaluator.reporting import plan as planning
from evaluator.reporting import trend as trends
from evaluator.reporting.api import write_reports
from evaluator.reporting.terminal import make_console, print_summary

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.argument("report_file", metavar="REPORT.json", type=_FILE)
@click.option("--baseline", type=_FILE, help="A previous REPORT.json to compare with, case by case.")
@click.option(
    "--tolerance",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Largest drop (0-1 scale) of a metric or the pass rate accepted against --baseline"
    " [default: the suite's gate.regression_tolerance, else 0].",
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


@click.command()
@click.argument("history_file", metavar="HISTORY.jsonl", type=_FILE)
@click.option(
    "--html",
    "html_path",
    type=_FILE,
    help="Write the trend plots as a self-contained HTML file (needs the 'report' extra).",
)
@click.option("--last", type=click.IntRange(1), default=10, show_default=True, help="Runs listed after the weeks.")
@handle_errors
def trend(history_file: Path, html_path: Path | None, last: int) -> None:
    """Weekly evaluation minutes, cost and quality from a history file written by `evaluator report --history`."""
    if not history_file.exists():
        raise InputError(f"{history_file}: history file not found")
    records = history.read(history_file)
    if not records:
        raise InputError(f"{history_file}: no run recorded yet")
    trends.print_trend(records, make_console(), last_runs=last)
    if html_path is not None:
        require_report_extra("evaluator trend --html")
        asset = trends.write_html(html_path, records)
        click.echo(f"wrote html: {html_path} (its plotting code: {asset})", err=True)


@click.command()
@click.argument("report_file", metavar="REPORT.json", type=_FILE)
@click.option("--cases", type=click.IntRange(1), required=True, help="Cases to evaluate.")
@click.option("--minutes", type=click.FloatRange(0.0, min_open=True), required=True, help="Time allowed.")
@click.option(
    "--endpoint-concurrency",
    type=click.FloatRange(0.0, min_open=True),
    default=None,
    help="Calls the endpoint serves at once [default: measured from the run's 429s, else unknown].",
)
@click.option(
    "--per-shard-concurrency",
    "per_shard_calls",
    type=click.IntRange(1),
    default=None,
    help="Calls in flight per pod (the suite's concurrency.max_calls_per_endpoint) [default: measured].",
)
@click.option(
    "--startup-s", type=click.FloatRange(0.0), default=0.0, show_default=True, help="Pod start-up time to allow."
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@handle_errors
def plan(
    report_file: Path,
    cases: int,
    minutes: float,
    endpoint_concurrency: float | None,
    per_shard_calls: int | None,
    startup_s: float,
    as_json: bool,
) -> None:
    """How many shards and what parallelism finish --cases in --minutes, from a measured run's REPORT.json.

    \b
    Formula (Little's law over endpoint calls; every symbol in evaluator/reporting/plan.py):
      calls in flight Lc = cases * service_s_per_case / (60*minutes - p95_service_s - startup_s)
      shards S = ceil(Lc / calls_in_flight_per_pod); parallelism = S; per-pod calls c = ceil(Lc / S)
      capped by the endpoint: Lc <= endpoint_concurrency (given, or measured where the run saw 429s)
    Exit codes: 0 the target is reachable, 1 it is not (the best time is printed), 2 input error.
    """
    result = planning.make_plan(
        load_report(report_file),
        cases,
        minutes,
        endpoint_concurrency=endpoint_concurrency,
        per_shard_calls=per_shard_calls,
        startup_s=startup_s,
    )
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
    else:
        _print_plan(result, make_console())
    if not result.feasible:
        sys.exit(EXIT_GATE_FAILED)


def _print_plan(p: planning.Plan, console: Console) -> None:
    m = p.measured
    console.print(
        f"measured on {m.cases} cases in {m.shards} shard(s): {m.calls_per_case:.2f} calls/case, mean call"
        f" {m.call_mean_s:.3f} s, service {m.service_mean_s:.3f} s/case (p95 {m.service_p95_s:.3f} s),"
        f" {m.per_shard_calls_in_flight:.1f} calls in flight per pod, {m.endpoint_in_flight:.1f} at the endpoint",
        highlight=False,
    )
    console.print(f"endpoint ceiling: {p.ceiling_source}", highlight=False)
    verdict = "[green]reachable[/]" if p.feasible else "[red]NOT reachable[/]"
    console.print(
        f"{p.cases} cases in {p.minutes:g} min: {verdict}; needs {p.calls_in_flight:.1f} calls in flight",
        highlight=False,
    )
    console.print(
        f"[bold]shards (Job completions) = {p.shards}, parallelism = {p.parallelism}, "
        f"calls in flight per shard = {p.per_shard_calls}[/] -> predicted {p.predicted_minutes:.1f} min",
        highlight=False,
    )
    if p.best_minutes is not None:
        console.print(f"best possible against this endpoint: {p.best_minutes:.1f} min", highlight=False)
    for note in p.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(
        f"Indexed Job: completions: {p.shards}, parallelism: {p.parallelism}, env EVAL_TOTAL_SHARDS={p.shards};"
        f" suite concurrency.max_calls_per_endpoint: {p.per_shard_calls}",
        highlight=False,
    )
