"""The HTML report: plots, the metric table (per variant), searchable cases with their metadata; with variants, a
leaderboard, a forest plot of each candidate's paired differences per metric, the flipped cases and every case's
answers side by side.

No network is needed to open it: the plotting library is one file beside the page (`plotly-<version>.min.js`,
see figures.py), nothing is fetched from a CDN, so the folder can be archived by Jenkins and opened years later on
an air-gapped laptop. The page itself grows with the cases, not with the library: 20 cases are tens of kilobytes.
The case table's rows are data drawn a page at a time, in a script beside the page (`case_data_path`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from evaluator.atomic import write_text_atomic
from evaluator.baseline import BaselineChanges
from evaluator.contract import MetricSummary, Report, ReportCase
from evaluator.gate import apply_gate
from evaluator.reporting import figures
from evaluator.reporting.fields import compress_ranges, duration, excerpt, fmt, metadata_text, status
from evaluator.reporting.leaderboard import VariantsView, view
from evaluator.reporting.markdown import failed_shards, rerun_command
from evaluator.reporting.notes import provenance_rows, report_notes, scoring_notes
from evaluator.reporting.plots import all_figures

TOP_REGRESSIONS = 50
TOP_FLIPS = 50


CASE_PAGE_SIZE = 100


def _case_table(report: Report, metric_names: list[str], with_variants: bool, with_metadata: bool) -> tuple[
    dict[str, Any], str
]:  # fmt: skip
    """The case table's header (for the template) and its rows as one JSON document (for the page's script, which
    draws a page of rows at a time): each row is its status, then its cells' text, in the header's order."""
    columns = ["case", *(["variant"] if with_variants else []), "shard", "status", *metric_names, "duration s",
               *(["metadata"] if with_metadata else []), "input", "actual output", "reasons / error"]  # fmt: skip
    numeric = [columns.index("shard"), *range(columns.index("status") + 1, columns.index("duration s") + 1)]
    head = {
        "page_size": CASE_PAGE_SIZE,
        "numeric": numeric,
        "status": columns.index("status"),
        "metadata": columns.index("metadata") if with_metadata else -1,
    }
    # Each row becomes JSON as it is made (the same text as one json.dumps of the whole document, without holding
    # a hundred thousand lists of cells at once).
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    rows = ",".join(encode(_case_row(case, metric_names, with_variants, with_metadata)) for case in report.cases)
    text = f'{encode(head)[:-1]},"rows":[{rows}]}}'
    return {"columns": columns, "page_size": CASE_PAGE_SIZE}, figures.safe_json(text)


def _case_row(case: ReportCase, metric_names: list[str], with_variants: bool, with_metadata: bool) -> list[str]:
    """One row of the case table: its status (the row's class), then its cells in the header's order."""
    row_status = status(case)
    row = [row_status, case.case_id]
    if with_variants:
        row.append(case.variant)
    row += (str(case.shard), row_status)
    reasons = []
    metrics = case.metrics
    for name in metric_names:
        entry = metrics.get(name)
        if entry is not None:
            row.append(fmt(entry.score))
            text = entry.error or (entry.reason if not entry.success else None)
            if text:
                reasons.append(f"{name}: {excerpt(text, 300)}")
        else:
            row.append("–")
    if case.error is not None:
        reasons.insert(0, f"{case.error.kind}: {excerpt(case.error.message, 300)}")
    row.append(fmt(case.duration_s, ".2f"))
    if with_metadata:
        row.append(metadata_text(case.metadata, 300))
    row += (excerpt(case.input, 300), excerpt(case.actual_output, 300), " · ".join(reasons))
    return row


def _side_by_side(report: Report, compared: VariantsView) -> list[dict[str, Any]]:
    """One row per case: its input and expected output, then each variant's answer, status and scores."""
    if not compared.active:
        return []
    variants = list(report.variants)
    by_case: dict[str, dict[str, ReportCase]] = {}
    order: list[str] = []
    for case in report.cases:
        if case.case_id not in by_case:
            order.append(case.case_id)
        by_case.setdefault(case.case_id, {})[case.variant] = case
    flipped = {cid for p in report.comparisons for cid in p.flipped_to_fail}
    rows = []
    for case_id in order:
        answers = by_case[case_id]
        first = next(iter(answers.values()))
        cells = []
        for name in variants:
            answer = answers.get(name)
            if answer is None:
                cells.append({"status": "missing", "output": "(no result)", "scores": ""})
                continue
            scores = " · ".join(f"{m} {fmt(e.score, '.2f')}" for m, e in sorted(answer.metrics.items()))
            output = answer.actual_output if answer.error is None else f"{answer.error.kind}: {answer.error.message}"
            cells.append({"status": status(answer), "output": excerpt(output, 400), "scores": scores})
        rows.append(
            {
                "case_id": case_id,
                "input": excerpt(first.input, 300),
                "expected": excerpt(first.expected_output, 200),
                "flipped": case_id in flipped,
                "cells": cells,
            }
        )
    return rows


def render(
    report: Report,
    baseline: Report | None = None,
    comparison: BaselineChanges | None = None,
    *,
    suite_path: str | None = None,
    out_dir: str | None = None,
    price_per_1k_tokens: float = 0.0,
) -> str:
    """The complete HTML document, its case table's rows inline (`write` puts them in a file beside it)."""
    page, _ = _render(report, baseline, comparison, suite_path=suite_path, out_dir=out_dir,
                      price_per_1k_tokens=price_per_1k_tokens, case_data_file=None)  # fmt: skip
    return page


def _render(
    report: Report,
    baseline: Report | None,
    comparison: BaselineChanges | None,
    *,
    suite_path: str | None,
    out_dir: str | None,
    price_per_1k_tokens: float,
    case_data_file: str | None,
) -> tuple[str, str]:
    """(the page, its case table's rows as JSON): inline in the page, or loaded from `case_data_file` beside it."""
    totals = report.totals
    compared = view(report, flips_limit=TOP_FLIPS, price_per_1k_tokens=price_per_1k_tokens)
    deltas = {m.name: m for m in comparison.metrics} if comparison else {}
    metric_names = sorted(set(report.metrics) | {n for c in report.cases for n in c.metrics})
    per_variant = len(report.variants) > 1
    # With variants, each variant's own numbers (the pooled ones would mix the models being compared).
    summaries = {v: s.metrics for v, s in report.variants.items()} if per_variant else {"": report.metrics}
    metric_rows = []
    for variant, metrics in summaries.items():
        for name in metric_names:
            cells = _metric_cells(metrics.get(name))
            if comparison and not per_variant:  # a baseline's deltas are over every unit: beside pooled numbers
                d = deltas.get(name)
                cells += [
                    fmt(d.mean_delta if d else None, "+.3f") + (" (regressed)" if d and d.regressed else ""),
                    fmt(d.pass_rate_delta if d else None, "+.1%"),
                ]
            metric_rows.append({"variant": variant, "name": name, "cells": cells})
    plots = all_figures(report, baseline, comparison)
    regressions = [
        {
            "case_id": c.case_id,
            "metric": c.metric,
            "input": excerpt(c.input, 200),
            "old": fmt(c.old_score),
            "new": fmt(c.new_score) if c.error is None else f"error ({c.error})",
            "reason": excerpt(c.reason, 300),
        }
        for c in (comparison.regressions[:TOP_REGRESSIONS] if comparison else [])
    ]
    bad = failed_shards(report)
    suite_path = suite_path or report.suite.path or "SUITE.yaml"
    totals_line = (
        f"{totals.cases} cases: {totals.passed} passed, {totals.failed} failed, {totals.errored} errored · pass rate "
        f"{totals.pass_rate or 0:.1%} · error rate {totals.error_rate or 0:.1%} · wall time "
        f"{duration(totals.wall_time_s)} · {totals.calls} calls · "
        f"{totals.prompt_tokens + totals.completion_tokens} tokens"
    )
    verdict = apply_gate(report)
    with_metadata = any(c.metadata for c in report.cases)
    case_table, case_data = _case_table(report, metric_names, compared.active, with_metadata)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    source = resources.files("evaluator").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    page = env.from_string(source).render(
        plot_scripts=figures.script_tags(plots),
        plots=[{"id": div_id, "height": figure.layout.height or 380} for div_id, figure in plots],
        per_variant=per_variant,
        show_deltas=comparison is not None and not per_variant,
        with_metadata=with_metadata,
        verdict=verdict,
        suite_name=report.suite.name or "suite",
        run_id=report.run_id or "",
        commit=report.commit or "?",
        generated_at=report.generated_at,
        comparison=comparison,
        regression_reasons=comparison.reasons() if comparison else [],
        totals_line=totals_line,
        metric_rows=metric_rows,
        regressions=regressions,
        failed_shards=compress_ranges(bad),
        rerun=rerun_command(report, bad[0], suite_path, out_dir or "DIR") if bad else "",
        metric_names=metric_names,
        case_table=case_table,
        case_data="" if case_data_file else case_data,
        case_data_file=case_data_file or "",
        case_count=len(report.cases),
        compared=compared,
        variant_names=list(report.variants) if compared.active else [],
        side_by_side=_side_by_side(report, compared),
        notes=[
            *verdict.notes,
            *(comparison.notes if comparison else []),
            *scoring_notes(report),
            *report_notes(report, [*verdict.reasons, *verdict.inconclusive, *verdict.notes]),
        ],
        provenance=provenance_rows(report.provenance),
    )
    return page, case_data


def case_data_path(page: Path) -> Path:
    """The script beside a page that holds its case table's rows: `report.html` -> `report.cases.js`."""
    return page.with_name(f"{page.stem}.cases.js")


def _metric_cells(m: MetricSummary | None) -> list[str]:
    return [
        str(m.count if m else 0),
        str(m.errors if m else 0),
        fmt(m.mean if m else None),
        fmt(m.p50 if m else None),
        fmt(m.p95 if m else None),
        fmt(m.pass_rate if m else None, ".1%"),
        fmt(m.threshold if m else None, "g"),
    ]


def write(
    path: Path,
    report: Report,
    baseline: Report | None = None,
    comparison: BaselineChanges | None = None,
    **options: Any,
) -> Path:
    """Writes the page at `path`, its case table's rows beside it (`case_data_path`) and the plotting library
    (once per folder); returns the library's path. `options` are `render`'s.

    The rows are a script beside the page, not a JSON element inside it: at 100,000 cases (12 MB) the inline
    element kept headless Chromium twice as long before the page was drawn (bench/bench_report_scale.py), and a
    script is what a file:// page may load (it cannot fetch JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    asset = figures.write_asset(path.parent)
    data = case_data_path(path)
    page, rows = _render(report, baseline, comparison, case_data_file=data.name, **{**_DEFAULTS, **options})
    write_text_atomic(data, f"window.evaluatorCaseTable = {figures.script_json(rows)};\n")
    write_text_atomic(path, page)
    return asset


_DEFAULTS: dict[str, Any] = {"suite_path": None, "out_dir": None, "price_per_1k_tokens": 0.0}
