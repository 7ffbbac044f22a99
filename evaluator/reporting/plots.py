"""Plotly figures of one aggregate (and its baseline): the pictures in the HTML report.

Plotly, not hand-written SVG: the figures stay interactive (zoom, hover shows the case id); the library is one
file beside the pages (see figures.py). A figure with nothing to show is not drawn at all (`all_figures` leaves it
out), and histograms are binned here, so their size does not depend on the number of cases.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from evaluator.baseline import BaselineChanges
from evaluator.contract import PairComparison, Report, ShardTiming
from evaluator.reporting.fields import metric_score
from evaluator.reporting.figures import TEMPLATE, bins

STRAGGLER_FACTOR = 1.5  # a shard slower than 1.5x the median shard is drawn as a straggler
_LAYOUT: dict[str, Any] = {
    "template": TEMPLATE,
    "height": 380,
    "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
}


def _metric_names(report: Report) -> list[str]:
    names = set(report.metrics)
    for case in report.cases:
        names.update(case.metrics)
    return sorted(names)


SCORE_BIN = 0.05


def score_distribution(report: Report) -> go.Figure | None:
    """One histogram of scores per metric (bins of 0.05; 1.0 in the last), threshold marked; None without a score."""
    names = _metric_names(report)
    scores: dict[str, list[float]] = {name: [] for name in names}
    for case in report.cases:  # one pass over the cases, every metric's scores at once
        for name, result in case.metrics.items():
            if result.score is not None:
                scores[name].append(result.score)
    if not any(scores.values()):
        return None
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True)
    for col, name in enumerate(names, start=1):
        centres, counts = bins(scores[name], 0.0, SCORE_BIN, round(1 / SCORE_BIN))
        fig.add_trace(
            go.Bar(x=centres, y=counts, width=SCORE_BIN * 0.95, name=name, showlegend=False,
                   hovertemplate="%{y} cases near %{x:.3f}<extra>" + name + "</extra>"),
            row=1,
            col=col,
        )  # fmt: skip
        entry = report.metrics.get(name)
        threshold = entry.threshold if entry is not None else None
        if threshold is not None:
            fig.add_vline(x=threshold, line_dash="dash", line_color="red", row=1, col=col)
        fig.update_xaxes(range=[-0.02, 1.07], title_text="score", row=1, col=col)
    fig.update_yaxes(title_text="cases", row=1, col=1)
    fig.update_layout(title="Score distribution per metric (dashed: threshold)", **_LAYOUT)
    return fig


def baseline_vs_current(
    report: Report, baseline: Report | None, comparison: BaselineChanges | None
) -> go.Figure | None:
    """Mean score per metric side by side, and each matched case's old vs new score; None without a baseline."""
    if baseline is None or comparison is None:
        return None
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=["mean score per metric", "per case: baseline (x) vs current (y)"]
    )
    names = _metric_names(report)
    current = report.metrics
    fig.add_trace(
        go.Bar(x=names, y=[current[n].mean if n in current else None for n in names], name="current"),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=[m.name for m in comparison.metrics],
            y=[m.baseline_mean for m in comparison.metrics],
            name="baseline (matched cases)",
        ),
        row=1,
        col=1,
    )
    base_cases = {c.case_id: c for c in baseline.cases}
    for name in names:
        xs: list[float] = []
        ys: list[float] = []
        ids: list[str] = []
        for case in report.cases:
            cid = case.case_id
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
    fig.update_xaxes(range=[-0.02, 1.02], row=1, col=2)
    fig.update_yaxes(range=[-0.02, 1.02], row=1, col=2)
    fig.update_layout(title=title, barmode="group", **_LAYOUT)
    return fig


LATENCY_BINS = 40


def latency_histogram(report: Report) -> go.Figure | None:
    """Latency of every call, one overlaid histogram per call type (target, judge); None without a call."""
    by_type: dict[str, list[float]] = {}
    for case in report.cases:
        for call in case.calls:
            by_type.setdefault(call.type, []).append(call.latency_s)
    if not by_type:
        return None
    fig = go.Figure()
    values = [v for vs in by_type.values() for v in vs]
    # One set of bins for every call type, so the overlaid histograms compare like with like.
    low, high = min(values), max(values)
    size = max((high - low) / LATENCY_BINS, 1e-4)
    for kind in sorted(by_type):
        centres, counts = bins(by_type[kind], low, size, LATENCY_BINS)
        fig.add_trace(
            go.Bar(x=centres, y=counts, width=size, name=f"{kind} ({len(by_type[kind])} calls)", opacity=0.6,
                   hovertemplate="%{y} calls near %{x:.3f} s<extra>" + kind + "</extra>")
        )  # fmt: skip
    fig.update_layout(
        title="Latency per call type", barmode="overlay", xaxis_title="seconds", yaxis_title="calls", **_LAYOUT
    )
    return fig


def _ts(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def stragglers(report: Report) -> list[int]:
    """Shards whose wall time exceeds STRAGGLER_FACTOR times the median shard's."""
    per_shard = report.shards.per_shard
    walls = [p.wall_time_s or 0.0 for p in per_shard]
    if len(walls) < 2:
        return []
    median = statistics.median(walls)
    return sorted(p.index for p in per_shard if (p.wall_time_s or 0.0) > STRAGGLER_FACTOR * median > 0)


def shard_timeline(report: Report) -> go.Figure | None:
    """One bar per shard from its start to its end (seconds since the first shard started); None without shards."""
    shards = report.shards
    per_shard = sorted(shards.per_shard, key=lambda p: p.index)
    if not per_shard and not shards.missing and not shards.incomplete:
        return None
    starts = [t for p in per_shard if (t := _ts(p.started_at)) is not None]
    origin = min(starts) if starts else None
    slow = set(stragglers(report))
    fig = go.Figure()
    groups: tuple[tuple[str, list[ShardTiming], str], ...] = (
        ("shard", [p for p in per_shard if p.index not in slow], "#4c78a8"),
        (f"straggler (> {STRAGGLER_FACTOR}x median)", [p for p in per_shard if p.index in slow], "#e45756"),
    )
    for label, members, color in groups:
        if not members:
            continue
        bases = []
        for p in members:
            t = _ts(p.started_at)
            bases.append((t - origin).total_seconds() if t is not None and origin is not None else 0.0)
        fig.add_trace(
            go.Bar(
                y=[f"shard {p.index}" for p in members],
                x=[p.wall_time_s or 0.0 for p in members],
                base=bases,
                orientation="h",
                name=label,
                marker_color=color,
                text=[f"{p.cases} cases, {p.errored} errored" for p in members],
            )
        )
    missing = shards.missing + shards.incomplete
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
    height = max(300, min(1600, 40 + 22 * (len(per_shard) + len(missing))))
    fig.update_layout(
        title="Per-shard timeline (stragglers in red)",
        xaxis_title="seconds since the first shard started",
        **{**_LAYOUT, "height": height},
    )
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def limit_changes(report: Report) -> go.Figure | None:
    """Each server's adaptive limits over time, per shard, with the reason of every change.

    Solid steps: calls in flight allowed (left axis), from the configured ceiling through every cut and recovery
    to the final limit. Dotted steps: the pace in requests per second (right axis), once a 429 announced a
    request-rate limit. Flat solid lines and no dotted ones mean the server never pushed back. None when no shard
    recorded an endpoint (a report v1, or no call made).
    """
    fig = go.Figure()
    ceiling = report.suite.max_calls_per_endpoint
    paced = False
    for shard in sorted(report.shards.per_shard, key=lambda p: p.index):
        end = shard.wall_time_s or 0.0
        for url, endpoint in sorted(shard.endpoints.items()):
            label = f"shard {shard.index} {url}"
            concurrency = [c for c in endpoint.limit_changes if c.limit == "concurrency"]
            start = (
                float(ceiling) if ceiling is not None else (concurrency[0].old if concurrency else endpoint.final_limit)
            )
            fig.add_trace(
                go.Scatter(
                    x=[0.0] + [c.elapsed_s for c in concurrency] + [end],
                    y=[start] + [c.new for c in concurrency] + [endpoint.final_limit],
                    text=["start"] + [f"{c.reason}: {c.old:g} → {c.new:g}" for c in concurrency] + ["end"],
                    mode="lines+markers", line_shape="hv", name=f"{label}: calls in flight",
                    hovertemplate="%{x:.1f} s: %{y:.1f} calls (%{text})<extra></extra>",
                )
            )  # fmt: skip
            rates = [c for c in endpoint.limit_changes if c.limit == "rate"]
            if rates:
                paced = True
                fig.add_trace(
                    go.Scatter(
                        x=[c.elapsed_s for c in rates] + [end],
                        y=[c.new for c in rates] + [rates[-1].new],
                        text=[f"{c.reason}: {c.old:g} → {c.new:g}/s" for c in rates] + ["end"],
                        mode="lines+markers", line_shape="hv", line_dash="dot", yaxis="y2",
                        name=f"{label}: requests/s (paced)",
                        hovertemplate="%{x:.1f} s: %{y:.1f} requests/s (%{text})<extra></extra>",
                    )
                )  # fmt: skip
    if not fig.data:
        return None
    layout: dict[str, Any] = {**_LAYOUT}
    if paced:
        layout["yaxis2"] = {"title": "requests per second (paced)", "overlaying": "y", "side": "right"}
        layout["legend"] = {"orientation": "h", "y": -0.3}
    fig.update_layout(
        title="Adaptive limits per server (cut on 503/timeouts/429, paced on request-rate limits)",
        xaxis_title="seconds since the shard started",
        yaxis_title="calls in flight allowed",
        **layout,
    )
    return fig


def _gap(high: float | None, low: float | None) -> float:
    return high - low if high is not None and low is not None else 0.0


def leaderboard_chart(report: Report) -> go.Figure:
    """Each variant's case pass rate and metric means with their 95% intervals (error bars), side by side."""
    names = list(report.variants)
    metrics = sorted({m for v in report.variants.values() for m in v.metrics})
    fig = go.Figure()
    series: list[tuple[str, list[float | None], list[float | None], list[float | None]]] = [
        (
            "pass rate",
            [v.totals.pass_rate for v in report.variants.values()],
            [v.pass_rate_ci_low for v in report.variants.values()],
            [v.pass_rate_ci_high for v in report.variants.values()],
        )
    ]
    for metric in metrics:
        entries = [v.metrics.get(metric) for v in report.variants.values()]
        series.append(
            (
                f"{metric} mean",
                [e.mean if e else None for e in entries],
                [e.ci_low if e else None for e in entries],
                [e.ci_high if e else None for e in entries],
            )
        )
    for label, values, lows, highs in series:
        up = [_gap(high, value) for value, high in zip(values, highs, strict=True)]
        down = [_gap(value, low) for value, low in zip(values, lows, strict=True)]
        fig.add_trace(go.Bar(x=names, y=values, name=label, error_y={"type": "data", "array": up, "arrayminus": down}))
    fig.update_layout(
        title=f"Leaderboard: pass rate and metric means per variant (95% intervals; reference {report.reference})",
        barmode="group",
        yaxis={"range": [0, 1.05], "title": "share / mean score"},
        **_LAYOUT,
    )
    return fig


def forest(
    report: Report, pairs: list[PairComparison] | None = None, tolerance: float | None = None
) -> go.Figure | None:
    """One panel per metric (and the case pass rate): each candidate's paired difference from the reference with
    its confidence interval, the zero line and the -tolerance line the gate holds it to."""
    chosen = report.comparisons if pairs is None else pairs
    if not chosen:
        return None
    tolerance = report.gate.regression_tolerance if tolerance is None else tolerance
    metrics = [*sorted({m for p in chosen for m in p.metrics}), "pass rate"]
    fig = make_subplots(rows=len(metrics), cols=1, subplot_titles=metrics, shared_xaxes=True, vertical_spacing=0.08)
    for row, metric in enumerate(metrics, start=1):
        labels, values, plus, minus, colors = [], [], [], [], []
        for pair in chosen:
            diff = pair.pass_rate if metric == "pass rate" else pair.metrics.get(metric)
            if diff is None or diff.difference is None:
                continue
            low = diff.ci_low if diff.ci_low is not None else diff.difference
            high = diff.ci_high if diff.ci_high is not None else diff.difference
            labels.append(f"{pair.candidate} vs {pair.reference}")
            values.append(diff.difference)
            plus.append(high - diff.difference)
            minus.append(diff.difference - low)
            below = tolerance is not None and high < -tolerance
            straddles = tolerance is not None and low <= -tolerance <= high
            colors.append("#e45756" if below else ("#f58518" if straddles else "#4c78a8"))
        fig.add_trace(
            go.Scatter(
                x=values, y=labels, mode="markers", name=metric, showlegend=False,
                marker={"size": 11, "color": colors, "symbol": "diamond"},
                error_x={"type": "data", "array": plus, "arrayminus": minus, "thickness": 2},
                hovertemplate="%{y}: %{x:+.3f}<extra>" + metric + "</extra>",
            ),
            row=row, col=1,
        )  # fmt: skip
        fig.add_vline(x=0, line_color="grey", line_dash="dot", row=row, col=1)
        if tolerance:
            fig.add_vline(x=-tolerance, line_color="red", line_dash="dash", row=row, col=1)
    fig.update_xaxes(title_text="candidate − reference (95% interval)", row=len(metrics), col=1)
    fig.update_layout(
        title=f"Paired differences from the reference (red dashed: −tolerance {tolerance or 0:g}; "
        "red: regression, orange: inconclusive)",
        **{**_LAYOUT, "height": max(300, 120 + 110 * len(metrics) * max(1, len(chosen)) // 2)},
    )
    return fig


def all_figures(
    report: Report, baseline: Report | None = None, comparison: BaselineChanges | None = None
) -> list[tuple[str, go.Figure]]:
    """(div id, figure) for every plot of the HTML report that has something to show, in page order."""
    variants: list[tuple[str, go.Figure | None]] = []
    if len(report.variants) > 1:
        variants = [("plot-leaderboard", leaderboard_chart(report)), ("plot-forest", forest(report))]
    chosen = [
        *variants,
        ("plot-scores", score_distribution(report)),
        ("plot-baseline", baseline_vs_current(report, baseline, comparison)),
        ("plot-latency", latency_histogram(report)),
        ("plot-shards", shard_timeline(report)),
        ("plot-limits", limit_changes(report)),
    ]
    return [(div_id, figure) for div_id, figure in chosen if figure is not None]
