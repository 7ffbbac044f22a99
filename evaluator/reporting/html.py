"""A single self-contained HTML report: plots (plotly.js inlined once), metric table, searchable cases.

No network is needed to open it: plotly.js (about 4.8 MB) is embedded, nothing is fetched from a CDN, so the
file can be archived by Jenkins and opened years later on an air-gapped laptop.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2
import plotly.io as pio
import plotly.offline

from evaluator.reporting.baseline import Comparison
from evaluator.reporting.fields import (
    case_error,
    compress_ranges,
    duration,
    excerpt,
    items,
    num,
    opt_num,
    section,
)
from evaluator.reporting.markdown import failed_shards, rerun_command
from evaluator.reporting.plots import all_figures
from evaluator.reporting.verdict import judge

TOP_REGRESSIONS = 50


def _f(value: float | None, fmt: str = ".3f") -> str:
    return "–" if value is None else format(value, fmt)


def _status(case: dict[str, Any]) -> str:
    if case_error(case) is not None:
        return "errored"
    return "passed" if case.get("success") else "failed"


def _case_row(case: dict[str, Any], metric_names: list[str]) -> dict[str, Any]:
    metrics = case.get("metrics") if isinstance(case.get("metrics"), dict) else {}
    assert isinstance(metrics, dict)
    scores = []
    reasons = []
    for name in metric_names:
        entry = metrics.get(name)
        if isinstance(entry, dict):
            scores.append(_f(opt_num(entry.get("score"))))
            text = entry.get("error") or (entry.get("reason") if not entry.get("success") else None)
            if text:
                reasons.append(f"{name}: {excerpt(text, 300)}")
        else:
            scores.append("–")
    err = case_error(case)
    if err is not None:
        reasons.insert(0, f"{err.get('kind')}: {excerpt(err.get('message'), 300)}")
    return {
        "case_id": str(case.get("case_id")),
        "shard": int(num(case.get("shard"), -1)),
        "status": _status(case),
        "scores": scores,
        "duration": _f(opt_num(case.get("duration_s")), ".2f"),
        "input": excerpt(case.get("input"), 300),
        "output": excerpt(case.get("actual_output"), 300),
        "reason": " · ".join(reasons),
    }


def render(
    report: dict[str, Any],
    baseline: dict[str, Any] | None = None,
    comparison: Comparison | None = None,
    *,
    suite_path: str | None = None,
    out_dir: str | None = None,
) -> str:
    """The complete HTML document."""
    metrics = section(report, "metrics")
    totals = section(report, "totals")
    suite = section(report, "suite")
    deltas = {m.name: m for m in comparison.metrics} if comparison else {}
    metric_names = sorted(set(metrics) | {n for c in items(report, "cases") for n in (c.get("metrics") or {})})
    metric_rows = []
    for name in metric_names:
        m = metrics.get(name) if isinstance(metrics.get(name), dict) else {}
        assert isinstance(m, dict)
        cells = [
            str(int(num(m.get("count")))),
            str(int(num(m.get("errors")))),
            _f(opt_num(m.get("mean"))),
            _f(opt_num(m.get("p50"))),
            _f(opt_num(m.get("p95"))),
            _f(opt_num(m.get("pass_rate")), ".1%"),
            _f(opt_num(m.get("threshold")), "g"),
        ]
        if comparison:
            d = deltas.get(name)
            cells += [
                _f(d.mean_delta if d else None, "+.3f") + (" (regressed)" if d and d.regressed else ""),
                _f(d.pass_rate_delta if d else None, "+.1%"),
            ]
        metric_rows.append({"name": name, "cells": cells})
    plot_divs = [
        pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})
        for div_id, fig in all_figures(report, baseline, comparison)
    ]
    regressions = [
        {
            "case_id": c.case_id,
            "metric": c.metric,
            "input": excerpt(c.input, 200),
            "old": _f(c.old_score),
            "new": _f(c.new_score) if c.error is None else f"error ({c.error})",
            "reason": excerpt(c.reason, 300),
        }
        for c in (comparison.regressions[:TOP_REGRESSIONS] if comparison else [])
    ]
    bad = failed_shards(report)
    suite_path = suite_path or str(suite.get("path") or "SUITE.yaml")
    totals_line = (
        f"{int(num(totals.get('cases')))} cases: {int(num(totals.get('passed')))} passed, "
        f"{int(num(totals.get('failed')))} failed, {int(num(totals.get('errored')))} errored · pass rate "
        f"{num(totals.get('pass_rate')):.1%} · error rate {num(totals.get('error_rate')):.1%} · wall time "
        f"{duration(num(totals.get('wall_time_s')))} · {int(num(totals.get('calls')))} calls · "
        f"{int(num(totals.get('prompt_tokens')) + num(totals.get('completion_tokens')))} tokens"
    )
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    source = resources.files("evaluator").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    return env.from_string(source).render(
        plotly_js=plotly.offline.get_plotlyjs(),
        verdict=judge(report),
        suite_name=str(suite.get("name", "suite")),
        run_id=str(report.get("run_id", "")),
        commit=str(report.get("commit") or "?"),
        generated_at=str(report.get("generated_at", "")),
        comparison=comparison,
        regression_reasons=comparison.reasons() if comparison else [],
        totals_line=totals_line,
        metric_rows=metric_rows,
        plot_divs=plot_divs,
        regressions=regressions,
        failed_shards=compress_ranges(bad),
        rerun=rerun_command(report, bad[0], suite_path, out_dir or "DIR") if bad else "",
        metric_names=metric_names,
        cases=[_case_row(c, metric_names) for c in items(report, "cases")],
    )
