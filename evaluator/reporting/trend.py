"""Weekly trends of evaluation time, cost and quality from the history file (the design's ROI view)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import plotly.graph_objects as go


def num(value: Any, default: float = 0.0) -> float:
    """A number from a history record (written by `history.summarize`; older lines may lack a field)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def opt_num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class Week:
    """One ISO week of runs: totals of time and cost, means of quality."""

    week: str
    runs: int = 0
    cases: int = 0
    minutes: float = 0.0
    tokens: int = 0
    cost: float = 0.0
    pass_rates: list[float] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)

    @property
    def pass_rate(self) -> float | None:
        return statistics.fmean(self.pass_rates) if self.pass_rates else None

    def score(self, metric: str) -> float | None:
        values = self.scores.get(metric, [])
        return statistics.fmean(values) if values else None


def _week_of(time: str) -> str:
    try:
        year, week, _ = datetime.fromisoformat(time).isocalendar()
    except ValueError:
        return "unknown"
    return f"{year}-W{week:02d}"


def weekly(records: list[dict[str, Any]]) -> list[Week]:
    """Group records by the ISO week of their time, oldest week first."""
    weeks: dict[str, Week] = {}
    for r in records:
        w = weeks.setdefault(_week_of(str(r.get("time", ""))), Week(_week_of(str(r.get("time", "")))))
        w.runs += 1
        w.cases += int(num(r.get("cases")))
        w.minutes += num(r.get("wall_time_s")) / 60
        w.tokens += int(num(r.get("tokens")))
        w.cost += num(r.get("cost"))
        if opt_num(r.get("pass_rate")) is not None:
            w.pass_rates.append(num(r.get("pass_rate")))
        scores = r.get("scores")
        if isinstance(scores, dict):
            for name, value in scores.items():
                if opt_num(value) is not None:
                    w.scores.setdefault(str(name), []).append(num(value))
    return [weeks[k] for k in sorted(weeks)]


def _metrics(records: list[dict[str, Any]]) -> list[str]:
    return sorted({str(n) for r in records if isinstance(r.get("scores"), dict) for n in r["scores"]})


def print_trend(records: list[dict[str, Any]], console: Console | None = None, last_runs: int = 10) -> None:
    """A weekly table (minutes, cost, quality) and the last runs."""
    console = console or Console()
    metrics = _metrics(records)
    table = Table(title="Weekly evaluation time, cost and quality", title_justify="left")
    for name in ("week", "runs", "cases", "minutes", "tokens", "cost", "pass rate", *metrics):
        table.add_column(
            name, justify="left" if name == "week" else "right", no_wrap=True, min_width=8 if name == "week" else None
        )
    for w in weekly(records):
        table.add_row(
            w.week,
            str(w.runs),
            str(w.cases),
            f"{w.minutes:.1f}",
            str(w.tokens),
            f"{w.cost:.2f}",
            "–" if w.pass_rate is None else f"{w.pass_rate:.1%}",
            *("–" if w.score(m) is None else f"{w.score(m):.3f}" for m in metrics),
        )
    console.print(table)
    runs = Table(title=f"Last {min(last_runs, len(records))} runs", title_justify="left")
    for name in ("time", "commit", "cases", "minutes", "cost", "pass rate", *metrics):
        runs.add_column(name, justify="left" if name in ("time", "commit") else "right", no_wrap=True)
    for r in records[-last_runs:]:
        scores = r.get("scores") if isinstance(r.get("scores"), dict) else {}
        assert isinstance(scores, dict)
        runs.add_row(
            str(r.get("time", ""))[:16],
            str(r.get("commit", ""))[:12],
            str(int(num(r.get("cases")))),
            f"{num(r.get('wall_time_s')) / 60:.1f}",
            f"{num(r.get('cost')):.2f}",
            f"{num(r.get('pass_rate')):.1%}",
            *("–" if opt_num(scores.get(m)) is None else f"{num(scores.get(m)):.3f}" for m in metrics),
        )
    console.print(runs)


def figure(records: list[dict[str, Any]]) -> go.Figure:
    """Three stacked panels per ISO week: minutes, cost, quality (pass rate and mean score per metric)."""
    import plotly.graph_objects as go  # the 'report' extra: imported only when a figure is asked for
    from plotly.subplots import make_subplots

    weeks = weekly(records)
    labels = [w.week for w in weeks]
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        subplot_titles=["evaluation minutes per week", "estimated cost per week", "quality (weekly mean)"],
        vertical_spacing=0.08,
    )
    fig.add_trace(go.Bar(x=labels, y=[w.minutes for w in weeks], name="minutes"), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=[w.cost for w in weeks], name="cost"), row=2, col=1)
    fig.add_trace(
        go.Scatter(x=labels, y=[w.pass_rate for w in weeks], name="pass rate", mode="lines+markers"), row=3, col=1
    )
    for metric in _metrics(records):
        fig.add_trace(
            go.Scatter(x=labels, y=[w.score(metric) for w in weeks], name=metric, mode="lines+markers"),
            row=3,
            col=1,
        )
    fig.update_yaxes(range=[0, 1.02], row=3, col=1)
    fig.update_layout(title="Evaluation trend", template="plotly_white", height=900)
    return fig


def render_html(records: list[dict[str, Any]]) -> str:
    """An HTML page with the trend figure; the plotting library is the file beside it (see `write_html`)."""
    from html import escape

    from evaluator.reporting import figures

    title = f"Evaluation trend ({len(records)} runs)"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n</head>\n<body>\n"
        '<div id="plot-trend" style="height: 900px"></div>\n'
        f"{figures.script_tags([('plot-trend', figure(records))])}\n</body>\n</html>\n"
    )


def write_html(path: Path, records: list[dict[str, Any]]) -> Path:
    """Writes the page at `path` and the plotting library beside it (once per folder); returns the library's path."""
    from evaluator.atomic import write_text_atomic
    from evaluator.reporting import figures

    path.parent.mkdir(parents=True, exist_ok=True)
    asset = figures.write_asset(path.parent)
    write_text_atomic(path, render_html(records))
    return asset
