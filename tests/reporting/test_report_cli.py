"""The three commands through click, as a user runs them: outputs written, exit codes, clear input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from evaluator.cli import main
from evaluator.contract import Report, load_report, to_dict, to_json
from evaluator.errors import InputError
from evaluator.reporting.terminal import print_summary
from tests.reporting.real_runs import make_report, set_score


def _write(path: Path, report: Report) -> Path:
    path.write_text(to_json(report))
    return path


def test_report_writes_every_output_and_the_history(tmp_path: Path) -> None:
    base = make_report(20, seed=1, run_id="base")
    cur = set_score(make_report(20, seed=1), "case-00001", "answer_relevancy", 0.0)
    args = [
        "report", str(_write(tmp_path / "r.json", cur)), "--baseline", str(_write(tmp_path / "b.json", base)),
        "--junit", str(tmp_path / "o" / "junit.xml"), "--markdown", str(tmp_path / "o" / "pr.md"),
        "--html", str(tmp_path / "o" / "r.html"), "--history", str(tmp_path / "history.jsonl"),
        "--price-per-1k-tokens", "2",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for name in ("junit.xml", "pr.md", "r.html"):
        assert (tmp_path / "o" / name).stat().st_size > 0
    assert "case-00001" in (tmp_path / "o" / "pr.md").read_text()
    record = json.loads((tmp_path / "history.jsonl").read_text())
    tokens = cur.totals.prompt_tokens + cur.totals.completion_tokens
    assert record["cost"] == pytest.approx(tokens / 1000 * 2)
    trend = CliRunner().invoke(main, ["trend", str(tmp_path / "history.jsonl"), "--html", str(tmp_path / "t.html")])
    assert trend.exit_code == 0, trend.output
    assert "2026-W48" in trend.output and (tmp_path / "t.html").exists()


def test_fail_on_regression_exit_codes(tmp_path: Path) -> None:
    base = make_report(20, seed=1)
    cur = set_score(base, "case-00001", "answer_relevancy", 0.0)  # mean drops by (old score)/20 > 0.025
    r, b = str(_write(tmp_path / "r.json", cur)), str(_write(tmp_path / "b.json", base))
    failing = CliRunner().invoke(main, ["report", r, "--baseline", b, "--fail-on-regression", "--tolerance", "0.02"])
    assert failing.exit_code == 1 and "? inconclusive: default vs baseline" in failing.output
    assert "answer_relevancy" in failing.output and "INCONCLUSIVE: run" in failing.output
    lenient = CliRunner().invoke(main, ["report", r, "--baseline", b, "--fail-on-regression", "--tolerance", "1"])
    assert lenient.exit_code == 0, lenient.output
    alone = CliRunner().invoke(main, ["report", r, "--fail-on-regression"])
    assert alone.exit_code == 2 and "needs --baseline" in alone.output


def _damaged(change) -> str:  # type: ignore[no-untyped-def]
    """A real aggregate's JSON with one structural damage."""
    content = to_dict(make_report(4))
    change(content)
    return json.dumps(content)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "line 1 column 2: invalid JSON"),
        ('{"schema": "other"}', "field 'schema' is 'other'"),
        (_damaged(lambda r: r.pop("cases")), "missing field 'cases'"),
        (_damaged(lambda r: r["cases"][0].pop("metrics")), "cases[0]: missing field 'metrics'"),
        (
            _damaged(lambda r: r["cases"][0]["metrics"]["exact_match"].update(score="high")),
            "field 'cases[0].metrics.exact_match.score': Input should be a valid number",
        ),
        (_damaged(lambda r: r["totals"].update(cases="20")), "field 'totals.cases'"),
        (_damaged(lambda r: r.update(problems=[{"kind": "x"}])), "problems[0]: missing field 'message'"),
    ],
    # Fixed ids: the damaged reports hold temporary paths, and pytest-xdist workers must collect the same names.
    ids=["not-json", "other-schema", "no-cases", "no-metrics", "text-score", "text-count", "problem-without-message"],
)
def test_bad_reports_exit_2_naming_file_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=r"bad\.json"):
        load_report(path)
    for command in (["report", str(path)], ["plan", str(path), "--cases", "10", "--minutes", "5"], ["gate", str(path)]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


def test_missing_files_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "nope.json: cannot read" in result.output
    result = CliRunner().invoke(main, ["trend", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "history file not found" in result.output


def test_plan_command_prints_shards_and_exits_1_when_unreachable(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.json", make_report(40))
    ok = CliRunner().invoke(main, ["plan", str(path), "--cases", "100", "--minutes", "60"])
    assert ok.exit_code == 0, ok.output
    assert "shards (Job completions) = 1" in ok.output
    slow = CliRunner().invoke(
        main, ["plan", str(path), "--cases", "100000", "--minutes", "1", "--endpoint-concurrency", "4", "--json"]
    )
    assert slow.exit_code == 1
    plan = json.loads(slow.output)
    assert plan["feasible"] is False and plan["best_minutes"] > 1


def test_print_summary_shows_verdict_metrics_latency_and_missing_shards() -> None:
    console = Console(record=True, width=120)
    print_summary(make_report(30, total_shards=3, missing_shards=(2,), errored_every=7), console=console)
    out = console.export_text()
    assert out.startswith("FAIL suite smoke")
    assert "missing_shard" in out and "missing 2" in out
    assert "answer_relevancy" in out and "exact_match" in out
    assert "judge" in out and "target" in out and "timeout=" in out


def test_reports_are_written_readable_by_others(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.json", make_report(4))
    result = CliRunner().invoke(main, ["report", str(path), "--markdown", str(tmp_path / "c.md"), "-q"])
    assert result.exit_code == 0
    assert (tmp_path / "c.md").stat().st_mode & 0o044 == 0o044
