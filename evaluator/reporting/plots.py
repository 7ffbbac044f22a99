"""Plotly figures of one aggregate (and its baseline): the pictures in the HTML report.

Plotly, not hand-written SVG: the figures stay interactive (zoom, hover shows the case id) and the whole
library is inlined once, so the HTML opens with no network.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from evaluator.reporting.baseline import Comparison
from evaluator.reporting.fields import int_list, items, metric_score, num, opt_num, section

STRAGGLER_FACTOR = 1.5  # a shard slower than 1.5x the median shard is drawn as a straggler
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 380,
    "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
}


def _metric_names(report: dict[str, Any]) -> list[str]:
    names = set(section(report, "metrics"))
    for case in items(report, "cases"):
        if isinstance(case.get("metrics"), dict):
            names.update(case["metrics"])
    return sorted(names)


def _empty(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def score_distribution(report: dict[str, Any]) -> go.Figure:
    """One histogram of scores per metric, threshold marked."""
    names = _metric_names(report) or ["(no metric)"]
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True)
    thresholds = section(report, "metrics")
    for col, name in enumerate(names, start=1):
        scores = [s for c in items(report, "cases") if (s := metric_score(c, name)) is not None]
        fig.add_trace(
            go.Histogram(x=scores, name=name, xbins={"start": 0.0, "end": 1.05, "size": 0.05}, showlegend=False),
            row=1,
            col=col,
        )
        entry = thresholds.get(name)
        threshold = opt_num(entry.get("threshold")) if isinstance(entry, dict) else None
        if threshold is not None:
            fig.add_vline(x=threshold, line_dash="dash", line_color="red", row=1, col=col)
        fig.update_xaxes(range=[-0.02, 1.07], title_text="score", row=1, col=col)
    fig.update_yaxes(title_text="cases", row=1, col=1)
    fig.update_layout(title="Score distribution per metric (dashed: threshold)", **_LAYOUT)
    return fig


def baseline_vs_current(
    report: dict[str, Any], baseline: dict[str, Any] | None, comparison: Comparison | None
) -> go.Figure:
    """Mean score per metric side by side, and each matched case's old vs new score."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=["mean score per metric", "per case: baseline (x) vs current (y)"]
    )
    names = _metric_names(report)
    current = section(report, "metrics")
    fig.add_trace(
        go.Bar(
            x=names,
            y=[opt_num(current[n].get("mean")) if isinstance(current.get(n), dict) else None for n in names],
            name="current",
        ),
        row=1,
        col=1,
    )
    if baseline is not None and comparison is not None:
        fig.add_trace(
            go.Bar(
                x=[m.name for m in comparison.metrics],
                y=[m.baseline_mean for m in comparison.metrics],
                name="baseline (matched cases)",
            ),
            row=1,
            col=1,
        )
        base_cases = {str(c.get("case_id")): c for c in items(baseline, "cases")}
        for name in names:
            xs: list[float] = []
            ys: list[float] = []
            ids: list[str] = []
            for case in items(report, "cases"):
                cid = str(case.get("case_id"))
                old = metric_score(base_cases[cid], name) if cid in base_cases else None
                new = metric_score(case, name)
                if old is not None and new is not None:
                    xs.append(old)
                    ys.append(new)
                    ids.append(cid)
            fig.add_trace(
                go.Scatter(x=xs, y=ys, mode="markers", name=name, text=ids, marker={"size": 6, "opacity": 0.6}),
                row=1,
                col=2,
            )
        fig.add_trace(
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="no change"),
            row=1,
            col=2,
        )
        title = f"Baseline {comparison.baseline_run_id} vs current (below the diagonal: regressed)"
    else:
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot"}, name="no change"), 1, 2)
        fig.add_annotation(text="no baseline given", showarrow=False, xref="x2", yref="y2", x=0.5, y=0.5)
        title = "Baseline vs current (no baseline given: current only)"
    fig.update_xaxes(range=[-0.02, 1.02], row=1, col=2)
    fig.update_yaxes(range=[-0.02, 1.02], row=1, col=2)
    fig.update_layout(title=title, barmode="group", **_LAYOUT)
    return fig


def latency_histogram(report: dict[str, Any]) -> go.Figure:
    """Latency of every call, one overlaid histogram per call type (target, judge)."""
    by_type: dict[str, list[float]] = {}
    for case in items(report, "cases"):
        for call in case.get("calls") or []:
            if isinstance(call, dict) and opt_num(call.get("latency_s")) is not None:
                by_type.setdefault(str(call.get("type", "call")), []).append(num(call.get("latency_s")))
    fig = go.Figure()
    values = [v for vs in by_type.values() for v in vs]
    # One set of bins for every call type, so the overlaid histograms compare like with like.
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    size = max((high - low) / 40, 1e-4)
    for kind in sorted(by_type):
        fig.add_trace(
            go.Histogram(
                x=by_type[kind],
                name=f"{kind} ({len(by_type[kind])} calls)",
                opacity=0.6,
                xbins={"start": low, "end": high + size, "size": size},
            )
        )
    if not by_type:
        _empty(fig, "no call was recorded")
    fig.update_layout(
        title="Latency per call type",
        barmode="overlay",
        xaxis_title="seconds",
        yaxis_title="calls",
        **_LAYOUT,
    )
    return fig


def _ts(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def stragglers(report: dict[str, Any]) -> list[int]:
    """Shards whose wall time exceeds STRAGGLER_FACTOR times the median shard's."""
    per_shard = items(section(report, "shards"), "per_shard")
    walls = [num(p.get("wall_time_s")) for p in per_shard]
    if len(walls) < 2:
        return []
    median = statistics.median(walls)
    return sorted(
        int(num(p.get("index"))) for p in per_shard if num(p.get("wall_time_s")) > STRAGGLER_FACTOR * median > 0
    )


def shard_timeline(report: dict[str, Any]) -> go.Figure:
    """One bar per shard from its start to its end (seconds since the first shard started)."""
    shards = section(report, "shards")
    per_shard = sorted(items(shards, "per_shard"), key=lambda p: num(p.get("index")))
    starts = [t for p in per_shard if (t := _ts(p.get("started_at"))) is not None]
    origin = min(starts) if starts else None
    slow = set(stragglers(report))
    fig = go.Figure()
    for label, members, color in (
        ("shard", [p for p in per_shard if int(num(p.get("index"))) not in slow], "#4c78a8"),
        (
            f"straggler (> {STRAGGLER_FACTOR}x median)",
            [p for p in per_shard if int(num(p.get("index"))) in slow],
            "#e45756",
        ),
    ):
        if not members:
            continue
        bases = []
        for p in members:
            t = _ts(p.get("started_at"))
            bases.append((t - origin).total_seconds() if t is not None and origin is not None else 0.0)
        fig.add_trace(
            go.Bar(
                y=[f"shard {int(num(p.get('index')))}" for p in members],
                x=[num(p.get("wall_time_s")) for p in members],
                base=bases,
                orientation="h",
                name=label,
                marker_color=color,
                text=[f"{int(num(p.get('cases')))} cases, {int(num(p.get('errored')))} errored" for p in members],
            )
        )
    missing = int_list(shards.get("missing")) + int_list(shards.get("incomplete"))
    if missing:
        fig.add_trace(
            go.Scatter(
                y=[f"shard {i}" for i in missing],
                x=[0] * len(missing),
                mode="markers",
                name="missing/incomplete",
                marker={"symbol": "x", "size": 12, "color": "black"},
            )
        )
    if not per_shard and not missing:
        _empty(fig, "no shard timing recorded")
    height = max(300, min(1600, 40 + 22 * (len(per_shard) + len(missing))))
    fig.update_layout(
        title="Per-shard timeline (stragglers in red)",
        xaxis_title="seconds since the first shard started",
        **{**_LAYOUT, "height": height},
    )
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def all_figures(
    report: dict[str, Any], baseline: dict[str, Any] | None = None, comparison: Comparison | None = None
) -> list[tuple[str, go.Figure]]:
    """(div id, figure) for every plot of the HTML report, in page order."""
    return [
        ("plot-scores", score_distribution(report)),
        ("plot-baseline", baseline_vs_current(report, baseline, comparison)),
        ("plot-latency", latency_histogram(report)),
        ("plot-shards", shard_timeline(report)),
    ]
