"""What the commands print for people and for logs (rich): `report`'s summary, `aggregate`'s merge lines.

Each command prints its own part once: `aggregate` what it merged (shards, units, problems) and where it wrote the
report; `report` the summary (verdict, totals, metrics or leaderboard, latency, shards) and the files it wrote;
`gate` its verdict. In a terminal, tables fit the window; in a log (not a TTY: CI, a pipe, a file) they are printed
at their full width, uncut and without colour codes, so a long variant or metric name reads whole (`make_console`).
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich.console import Console
from rich.table import Table

from evaluator.baseline import BaselineChanges
from evaluator.contract import Report
from evaluator.gate import apply_gate
from evaluator.reporting.fields import compress_ranges, duration, fmt
from evaluator.reporting.leaderboard import VariantsView, view
from evaluator.reporting.notes import provenance_line, report_notes, scoring_notes

LOG_WIDTH = 1_000  # columns of a log: wide enough that no table is cut (a table is only as wide as its content)


def make_console(stderr: bool = False, file: TextIO | None = None) -> Console:
    """A console for `file` (default stdout, or stderr): the terminal's width on a TTY; on anything else (a pipe,
    a CI log) `LOG_WIDTH` columns, no colour and no cut cells, unless COLUMNS says otherwise."""
    stream = file if file is not None else (sys.stderr if stderr else sys.stdout)
    if stream.isatty():
        return Console(file=stream)
    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else LOG_WIDTH
    return Console(file=stream, width=width, color_system=None, force_terminal=False, soft_wrap=False)


def _pct(value: float | None) -> str:
    return fmt(value, ".1%")


def metrics_table(report: Report, comparison: BaselineChanges | None = None) -> Table:
    deltas = {m.name: m for m in comparison.metrics} if comparison else {}
    table = Table(title="Metrics", title_justify="left")
    table.add_column("metric", no_wrap=True)
    for name in ("n", "err", "mean", "p50", "p95", "pass", "thr"):
        table.add_column(name, justify="right", no_wrap=True)
    if comparison:
        table.add_column("Δmean", justify="right", no_wrap=True)
        table.add_column("Δpass", justify="right", no_wrap=True)
    for name, m in sorted(report.metrics.items()):
        row = [name, str(m.count), str(m.errors), fmt(m.mean), fmt(m.p50), fmt(m.p95), _pct(m.pass_rate),
               fmt(m.threshold, "g")]  # fmt: skip
        if comparison:
            d = deltas.get(name)
            style = "red" if d is not None and d.regressed else "green"
            md, pd = (d.mean_delta, d.pass_rate_delta) if d else (None, None)
            row.append(f"[{style}]{fmt(md, '+.3f')}[/]")
            row.append(f"[{style}]{fmt(pd, '+.1%')}[/]")
        table.add_row(*row)
    return table


def leaderboard_table(compared: VariantsView) -> Table:
    table = Table(title="Leaderboard (95% intervals)", title_justify="left")
    for name in ("#", "variant", "model", "pass rate", *compared.metrics, "target p50/p95 s", "tokens/case"):
        table.add_column(name, justify="left" if name in ("variant", "model") else "right")
    for row in compared.leaderboard:
        table.add_row(
            str(row.rank), row.variant + (" (ref)" if row.reference else ""), row.model, row.pass_rate.text(".1%"),
            *(row.metrics[m].text() if m in row.metrics else "–" for m in compared.metrics),
            f"{fmt(row.latency_p50, '.2f')}/{fmt(row.latency_p95, '.2f')}", fmt(row.tokens_per_case, ".0f"),
        )  # fmt: skip
    return table


def pairs_table(compared: VariantsView) -> Table:
    table = Table(title=f"Candidates vs reference (tolerance {compared.tolerance:g})", title_justify="left")
    for name in ("candidate", "metric", "difference [95% CI]", "W/T/L", "p", "decision"):
        table.add_column(name, justify="right" if name in ("difference [95% CI]", "W/T/L", "p") else "left")
    styles = {"regression": "red", "inconclusive": "yellow", "no_regression": "green"}
    for row in compared.pairs:
        style = styles.get(row.verdict, "white")
        table.add_row(
            row.candidate, row.metric, row.difference.text("+.3f"), f"{row.wins}/{row.ties}/{row.losses}",
            fmt(row.p_value, ".3g"), f"[{style}]{row.decision}[/]",
        )  # fmt: skip
    return table


def print_summary(report: Report, console: Console | None = None, comparison: BaselineChanges | None = None) -> None:
    """Print verdict, totals, metrics, latency, shards and problems of one aggregate."""
    console = console or make_console()
    totals, shards = report.totals, report.shards
    verdict = apply_gate(report)
    style = {"pass": "bold green", "fail": "bold red", "inconclusive": "bold yellow"}[verdict.status]
    console.print(
        f"[{style}]{verdict.label}[/] suite [bold]{report.suite.name or '?'}[/] run {report.run_id or '?'}"
        f" commit {(report.commit or '?')[:12]}"
    )
    for reason in verdict.reasons:
        console.print(f"  [red]•[/] {reason}")
    for reason in verdict.inconclusive:
        console.print(f"  [yellow]?[/] {reason}")
    console.print(
        f"cases {totals.cases}: [green]{totals.passed} passed[/], [yellow]{totals.failed} failed[/], "
        f"[red]{totals.errored} errored[/] · pass rate {_pct(totals.pass_rate)} · error rate {_pct(totals.error_rate)}"
        f" · wall {duration(totals.wall_time_s)} · calls {totals.calls}"
        f" · tokens {totals.prompt_tokens}+{totals.completion_tokens}",
        highlight=False,
    )
    said = [*verdict.reasons, *verdict.inconclusive]
    for note in [*scoring_notes(report), *report_notes(report, said)]:  # one line each, however narrow the
        console.print(f"note: {note}", highlight=False, soft_wrap=True)  # console: a log is grepped for them
    produced = provenance_line(report.provenance)
    if produced is not None:
        console.print(f"produced by {produced}", highlight=False, soft_wrap=True)
    compared = view(report)
    if compared.active:
        console.print(f"cases: {compared.profile_line or 'every case'}; {compared.judge_line}", highlight=False)
        console.print(leaderboard_table(compared))
        console.print(pairs_table(compared))
    else:
        console.print(metrics_table(report, comparison))
    if report.latency:
        lt = Table(title="Latency per call type (s)", title_justify="left")
        lt.add_column("type")
        for name in ("count", "mean", "p50", "p95", "max"):
            lt.add_column(name, justify="right")
        for kind, entry in sorted(report.latency.items()):
            lt.add_row(kind, str(entry.count), fmt(entry.mean), fmt(entry.p50), fmt(entry.p95), fmt(entry.max))
        console.print(lt)
    if report.errors_by_kind:
        console.print("errors by kind: " + ", ".join(f"{k}={v}" for k, v in sorted(report.errors_by_kind.items())))
    console.print(
        f"shards: {len(shards.complete)}/{shards.expected or 0} complete"
        + (f", [red]missing {compress_ranges(shards.missing)}[/]" if shards.missing else "")
        + (f", [red]incomplete {compress_ranges(shards.incomplete)}[/]" if shards.incomplete else ""),
        highlight=False,
    )
    for p in report.problems[:20]:
        console.print(f"  [red]problem[/] {p.kind}: {p.message}", highlight=False)
    if len(report.problems) > 20:
        console.print(f"  … and {len(report.problems) - 20} more problems")
    if comparison is not None:
        console.print(
            f"vs baseline {comparison.baseline_run_id}: {len(comparison.regressions)} regressed, "
            f"{len(comparison.improvements)} improved, {len(comparison.new)} new, {len(comparison.removed)} removed"
            f" (tolerance {comparison.tolerance:g})",
            highlight=False,
        )
        for reason in comparison.reasons():
            console.print(f"  [red]regression[/] {reason}", highlight=False)
        for reason in comparison.undecided():
            console.print(f"  [yellow]inconclusive[/] {reason}", highlight=False)


def print_merged(report: Report, out: str, console: Console) -> None:
    """`aggregate`'s lines: what was merged into `out` and what is wrong with it (the problems, which the gate
    refuses); the summary is `report`'s, the verdict `gate`'s."""
    shards, totals = report.shards, report.totals
    variants = report.variant_names
    units = f"{totals.cases} units ({totals.cases // max(1, len(variants))} cases x {len(variants)} variants)"
    console.print(
        f"aggregated run {report.run_id or '?'}: {len(shards.complete)}/{shards.expected or 0} shards complete, "
        f"{units if len(variants) > 1 else f'{totals.cases} cases'}: {totals.passed} passed, {totals.failed} failed, "
        f"{totals.errored} errored; {len(report.problems)} problem(s) -> {out}",
        highlight=False,
    )
    if shards.missing:
        console.print(f"  missing shards: {compress_ranges(shards.missing)}", highlight=False)
    if shards.incomplete:
        console.print(f"  incomplete shards: {compress_ranges(shards.incomplete)}", highlight=False)
    for p in report.problems[:20]:
        console.print(f"  problem {p.kind}: {p.message}", highlight=False)
    if len(report.problems) > 20:
        console.print(f"  … and {len(report.problems) - 20} more problems (see the report)", highlight=False)
