"""History (one JSON line per run) and the weekly trend view."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from evaluator.contract import Report
from evaluator.reporting import history, trend
from tests.reporting.real_runs import make_report


def _report(week: int, run: int, minutes: float) -> Report:
    day = 2 + 7 * week + run  # Mondays of November 2026 are 2, 9, 16, 23
    report = make_report(10, run_id=f"run-{week}-{run}", generated_at=f"2026-11-{day:02d}T09:00:00+00:00")
    report.totals.wall_time_s = minutes * 60
    return report


def test_summary_has_time_commit_cases_wall_time_tokens_cost_and_scores() -> None:
    report = make_report(10)
    record = history.summarize(report, price_per_1k_tokens=0.5)
    tokens = report.totals.prompt_tokens + report.totals.completion_tokens
    assert record["tokens"] == tokens
    assert record["cost"] == pytest.approx(tokens / 1000 * 0.5)
    assert record["time"] == report.generated_at and record["commit"] == report.commit
    assert record["cases"] == 10 and record["wall_time_s"] == report.totals.wall_time_s
    assert record["scores"]["answer_relevancy"] == pytest.approx(report.metrics["answer_relevancy"].mean)


def test_append_is_idempotent_per_run_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "h" / "history.jsonl"
    assert history.append(path, history.summarize(_report(0, 0, 5))).appended
    assert not history.append(path, history.summarize(_report(0, 0, 5))).appended
    with path.open("a") as fh:
        fh.write('{"schema": "evaluator.history/v1", "ti')  # a writer killed mid-line
    assert [r["run_id"] for r in history.read(path)] == ["run-0-0"]
    assert history.append(path, history.summarize(_report(0, 1, 6))).appended
    assert [r["run_id"] for r in history.read(path)] == ["run-0-0", "run-0-1"]
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["run_id"] == "run-0-1"


def test_a_corrupt_line_in_the_middle_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"schema": "evaluator.history/v1", "time": "x", "run_id": "a"}\nnot json\n{}\n')
    with pytest.raises(history.HistoryError, match=r"history.jsonl: line 2: invalid JSON"):
        history.read(path)


def test_weekly_view_sums_minutes_and_cost_and_averages_quality(tmp_path: Path) -> None:
    records = [
        history.summarize(_report(0, 0, 10), 1.0),
        history.summarize(_report(0, 1, 20), 1.0),
        history.summarize(_report(2, 0, 5), 1.0),
    ]
    weeks = trend.weekly(records)
    assert [w.week for w in weeks] == ["2026-W45", "2026-W47"]
    assert weeks[0].runs == 2 and weeks[0].minutes == pytest.approx(30.0)
    assert weeks[0].cost == pytest.approx(records[0]["cost"] + records[1]["cost"])
    assert weeks[1].minutes == pytest.approx(5.0)
    assert weeks[0].pass_rate == pytest.approx((records[0]["pass_rate"] + records[1]["pass_rate"]) / 2)
    console = Console(record=True, width=160)
    trend.print_trend(records, console)
    out = console.export_text()
    assert "2026-W45" in out and "30.0" in out and "answer_relevancy" in out
    page = tmp_path / "trend.html"
    library = trend.write_html(page, records)
    html = page.read_text()
    assert 'id="plot-trend"' in html and "2026-W47" in html
    # No network: the plotting library is the one file beside the page, loaded by its relative name.
    assert re.findall(r"<script src=([^>]*)>", html) == [f'"{library.name}"'] and library.parent == tmp_path
