"""The end-of-run summary in a terminal (rich): what `run --workers`, `aggregate` and `report` print."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from evaluator.reporting.baseline import Comparison
from evaluator.reporting.fields import compress_ranges, duration, int_list, items, num, opt_num, section
from evaluator.reporting.verdict import judge


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def metrics_table(report: dict[str, Any], comparison: Comparison | None = None) -> Table:
    metrics = section(report, "metrics")
    deltas = {m.name: m for m in comparison.metrics} if comparison else {}
    table = Table(title="Metrics", title_justify="left")
    table.add_column("metric", no_wrap=True)
    for name in ("n", "err", "mean", "p50", "p95", "pass", "thr"):
        table.add_column(name, justify="right", no_wrap=True)
    if comparison:
        table.add_column("Δmean", justify="right", no_wrap=True)
        table.add_column("Δpass", justify="right", no_wrap=True)
    for name in sorted(metrics):
        m = metrics[name] if isinstance(metrics[name], dict) else {}
        row = [
            name,
            str(int(num(m.get("count")))),
            str(int(num(m.get("errors")))),
            _f(opt_num(m.get("mean"))),
            _f(opt_num(m.get("p50"))),
            _f(opt_num(m.get("p95"))),
            _pct(opt_num(m.get("pass_rate"))),
            "–" if opt_num(m.get("threshold")) is None else f"{num(m.get('threshold')):g}",
        ]
        if comparison:
            d = deltas.get(name)
            style = "red" if d is not None and d.regressed else "green"
            md, pd = (d.mean_delta, d.pass_rate_delta) if d else (None, None)
            row.append(f"[{style}]{'–' if md is None else f'{md:+.3f}'}[/]")
            row.append(f"[{style}]{'–' if pd is None else f'{pd:+.1%}'}[/]")
        table.add_row(*row)
    return table


def print_summary(report: dict[str, Any], console: Console | None = None, comparison: Comparison | None = None) -> None:
    """Print verdict, totals, metrics, latency, shards and problems of one aggregate."""
    console = console or Console()
    totals = section(report, "totals")
    shards = section(report, "shards")
    verdict = judge(report)
    suite = section(report, "suite")
    style = "bold green" if verdict.passed else "bold red"
    console.print(
        f"[{style}]{verdict.label}[/] suite [bold]{suite.get('name', '?')}[/] run {report.get('run_id', '?')}"
        f" commit {str(report.get('commit') or '?')[:12]}"
    )
    for reason in verdict.reasons:
        console.print(f"  [red]•[/] {reason}")
    console.print(
        f"cases {int(num(totals.get('cases')))}: [green]{int(num(totals.get('passed')))} passed[/], "
        f"[yellow]{int(num(totals.get('failed')))} failed[/], [red]{int(num(totals.get('errored')))} errored[/]"
        f" · pass rate {_pct(opt_num(totals.get('pass_rate')))} · error rate {_pct(opt_num(totals.get('error_rate')))}"
        f" · wall {duration(num(totals.get('wall_time_s')))} · calls {int(num(totals.get('calls')))}"
        f" · tokens {int(num(totals.get('prompt_tokens')))}+{int(num(totals.get('completion_tokens')))}",
        highlight=False,
    )
    console.print(metrics_table(report, comparison))
    latency = section(report, "latency")
    if latency:
        lt = Table(title="Latency per call type (s)", title_justify="left")
        lt.add_column("type")
        for name in ("count", "mean", "p50", "p95", "max"):
            lt.add_column(name, justify="right")
        for kind in sorted(latency):
            entry = latency[kind] if isinstance(latency[kind], dict) else {}
            lt.add_row(
                kind,
                str(int(num(entry.get("count")))),
                *(_f(opt_num(entry.get(k))) for k in ("mean", "p50", "p95", "max")),
            )
        console.print(lt)
    errors = section(report, "errors_by_kind")
    if errors:
        console.print("errors by kind: " + ", ".join(f"{k}={int(num(v))}" for k, v in sorted(errors.items())))
    missing = int_list(shards.get("missing"))
    incomplete = int_list(shards.get("incomplete"))
    console.print(
        f"shards: {len(int_list(shards.get('complete')))}/{int(num(shards.get('expected')))} complete"
        + (f", [red]missing {compress_ranges(missing)}[/]" if missing else "")
        + (f", [red]incomplete {compress_ranges(incomplete)}[/]" if incomplete else ""),
        highlight=False,
    )
    problems = items(report, "problems")
    for p in problems[:20]:
        console.print(f"  [red]problem[/] {p.get('kind')}: {p.get('message')}", highlight=False)
    if len(problems) > 20:
        console.print(f"  … and {len(problems) - 20} more problems")
    if comparison is not None:
        console.print(
            f"vs baseline {comparison.baseline_run_id}: {len(comparison.regressions)} regressed, "
            f"{len(comparison.improvements)} improved, {len(comparison.new)} new, {len(comparison.removed)} removed"
            f" (tolerance {comparison.tolerance:g})",
            highlight=False,
        )
        for reason in comparison.reasons():
            console.print(f"  [red]regression[/] {reason}", highlight=False)
