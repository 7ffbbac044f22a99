"""`evaluator capacity` (alias `plan`): how many shards and what parallelism finish N cases in M minutes.

Sized from a measured run's REPORT.json; "plan" elsewhere means what a run evaluates (`evaluator prepare`).
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
from evaluator.errors import EXIT_GATE_FAILED
from evaluator.reporting import capacity
from evaluator.reporting.terminal import make_console

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command("capacity")
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
@click.option("--json", "as_json", is_flag=True, help="Print the sizing as JSON.")
@handle_errors
def capacity_command(
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
    Formula (Little's law over endpoint calls; every symbol in evaluator/reporting/capacity.py):
      calls in flight Lc = cases * service_s_per_case / (60*minutes - p95_service_s - startup_s)
      shards S = ceil(Lc / calls_in_flight_per_pod); parallelism = S; per-pod calls c = ceil(Lc / S)
      capped by the endpoint: Lc <= endpoint_concurrency (given, or measured where the run saw 429s)
    Exit codes: 0 the target is reachable, 1 it is not (the best time is printed), 2 input error.
    """
    result = capacity.size_for(
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
        _print_sizing(result, make_console())
    if not result.feasible:
        sys.exit(EXIT_GATE_FAILED)


def _print_sizing(p: capacity.Sizing, console: Console) -> None:
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
