"""Custom metrics: `type: custom, class: "package.module:ClassName", args: {...}` from the user's own package.

A custom metric runs in a shard like a built-in, on the shared judge, and shows in the aggregate report and in all
three reports made from it (`evaluator report`); everything a user can get wrong about one is exit 2 naming the
suite file, line and field, before any call is made.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import read_records, write_suite
from tests.metrics.conftest import single_turn_case

pytestmark = pytest.mark.e2e

PKG = "tests.metrics.custom_pkg.metrics"


def test_custom_metrics_run_in_shards_and_show_in_every_report(tmp_path: Path, stub: str, evaluator_cli) -> None:
    cases = [single_turn_case(f"c{i}") for i in range(3)]
    # The stub judges "no" when a prompt says so: the answer carries it into the politeness metric's prompt.
    cases.append(single_turn_case("wrong", input="Answer with exactly: Lyon. stub-verdict: no", expected_output="Lyon"))
    metrics = [
        {"type": "custom", "name": "mentions_paris", "class": f"{PKG}:KeywordMetric", "args": {"keyword": "paris"},
         "threshold": 1.0},
        {"type": "custom", "name": "politeness", "class": f"{PKG}:JudgedPolitenessMetric", "args": {"style": "kind"}},
        {"type": "answer_relevancy"},
    ]  # fmt: skip
    suite = write_suite(tmp_path, cases, base_url=stub, metrics=metrics, gate={"min_pass_rate": 0.5})
    out = tmp_path / "out"
    for index in (0, 1):
        done = evaluator_cli("run", str(suite), "--out", str(out), "--shard-index", str(index), "--total-shards", "2")
        assert done.returncode == 0, done.stderr
    records = {r["case_id"]: r for i in (0, 1) for r in read_records(out / f"shard-0000{i}" / "results.jsonl")}
    assert set(records) == {"c0", "c1", "c2", "wrong"}
    for case_id, record in records.items():
        assert record["error"] is None, record["error"]
        keyword = record["metrics"]["mentions_paris"]
        assert keyword["score"] == (0.0 if case_id == "wrong" else 1.0)
        assert keyword["threshold"] == 1.0  # the suite's threshold reached the metric
        assert keyword["success"] is (case_id != "wrong")
        polite = case_id != "wrong"
        assert record["metrics"]["politeness"] == {
            "score": 1.0 if polite else 0.0, "threshold": 0.5, "success": polite, "reason": "ok", "error": None,
        }  # fmt: skip
        # The sync-only metric's judge call went through the shared client and was recorded with the case:
        # answer relevancy makes 3 judge calls, the politeness metric one more.
        assert len([c for c in record["calls"] if c["type"] == "judge"]) == 4

    report_path = tmp_path / "report.json"
    done = evaluator_cli("aggregate", str(out), "--out", str(report_path), "--expect-shards", "2")
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert report["metrics"]["mentions_paris"]["pass_rate"] == pytest.approx(0.75)
    assert report["metrics"]["politeness"]["mean"] == pytest.approx(0.75)

    junit, markdown, html = tmp_path / "r.xml", tmp_path / "r.md", tmp_path / "r.html"
    done = evaluator_cli(
        "report", str(report_path), "--junit", str(junit), "--markdown", str(markdown), "--html", str(html)
    )
    assert done.returncode == 0, done.stderr + done.stdout
    testcases = ET.parse(junit).getroot().iter("testcase")
    by_metric: dict[str, list[ET.Element]] = {}
    for testcase in testcases:
        by_metric.setdefault(testcase.get("classname", "").rsplit(".", 1)[-1], []).append(testcase)
    assert len(by_metric["mentions_paris"]) == 4 and len(by_metric["politeness"]) == 4
    for metric in ("mentions_paris", "politeness"):
        assert [t.get("name") for t in by_metric[metric] if t.find("failure") is not None] == ["wrong"]
    assert "mentions_paris" in markdown.read_text() and "politeness" in markdown.read_text()
    page = html.read_text()
    assert "mentions_paris" in page and "politeness" in page


def test_a_conversational_custom_metric_scores_recorded_turns(tmp_path: Path, stub: str, evaluator_cli) -> None:
    from tests.metrics.conftest import conversation_case

    metrics = [{"type": "custom", "class": f"{PKG}:AssistantTurnsMetric", "threshold": 0.6}]
    suite = write_suite(tmp_path, [conversation_case()], base_url=stub, metrics=metrics)
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    (record,) = read_records(tmp_path / "out" / "shard-00000" / "results.jsonl")
    assert record["metrics"]["AssistantTurnsMetric"] == {
        "score": 0.5, "threshold": 0.6, "success": False, "reason": None, "error": None,
    }  # fmt: skip


BAD: list[tuple[str, dict[str, Any], list[str]]] = [
    ("module-missing", {"class": "no_such_package.metrics:Metric"},
     ["field 'metrics.0.class'", "cannot import module 'no_such_package.metrics'", "ModuleNotFoundError"]),
    ("module-raises", {"class": "tests.metrics.custom_pkg.broken:Metric"},
     ["field 'metrics.0.class'", "RuntimeError: this module is broken on purpose"]),
    ("no-attribute", {"class": f"{PKG}:Missing"}, ["field 'metrics.0.class'", "has no attribute 'Missing'"]),
    ("not-a-metric", {"class": f"{PKG}:NotAMetric"}, ["field 'metrics.0.class'", "is not a DeepEval metric class"]),
    ("bad-path", {"class": "just_a_module"}, ["field 'metrics.0.class'", "should match pattern"]),
    ("bad-args", {"class": f"{PKG}:KeywordMetric", "args": {"keywrd": "x"}},
     ["field 'metrics.0.args'", "KeywordMetric(...) refused its arguments", "keywrd"]),
    ("model-in-args", {"class": f"{PKG}:JudgedPolitenessMetric", "args": {"model": "gpt-4o"}},
     ["field 'metrics.0.args'", "do not set 'model'"]),
    ("no-threshold", {"class": f"{PKG}:NoThresholdMetric", "args": {"keyword": "x"}},
     ["field 'metrics.0.threshold'", "no numeric threshold"]),
    ("undeliverable-param", {"class": f"{PKG}:NeedsMetadataMetric", "args": {"keyword": "x"}},
     ["field 'metrics.0.class'", "needs 'mcp_servers'"]),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_unusable_custom_metric_exits_2_naming_suite_line_and_field(
    tmp_path: Path, evaluator_cli, spec: dict[str, Any], expected: list[str]
) -> None:
    suite = write_suite(tmp_path, [single_turn_case()], metrics=[{"type": "custom", **spec}])
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.startswith(f"error: {suite}:")
    line = int(done.stderr.split(":", 3)[2])
    assert (
        suite.read_text()
        .splitlines()[line - 1]
        .lstrip(" -")
        .startswith(("type: custom", "class:", "args:", "threshold:", "keyword", "model"))
    )
    for fragment in expected:
        assert fragment in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_custom_metric_missing_a_declared_field_exits_2_at_the_case(tmp_path: Path, evaluator_cli) -> None:
    cases = [single_turn_case("a"), single_turn_case("b", expected_output=None)]
    suite = write_suite(tmp_path, cases, metrics=[{"type": "custom", "class": f"{PKG}:JudgedPolitenessMetric"}])
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "data.jsonl:2: field 'expected_output': required by metric 'JudgedPolitenessMetric'" in done.stderr


def test_a_metric_that_fails_to_build_in_the_shard_is_an_error_outcome_not_a_crash(
    tmp_path: Path, stub: str, evaluator_cli
) -> None:
    metrics = [{"type": "custom", "class": f"{PKG}:FailsInTheShardMetric", "args": {"keyword": "x"}},
               {"type": "exact_match"}]  # fmt: skip
    suite = write_suite(tmp_path, [single_turn_case()], base_url=stub, metrics=metrics, gate={"error_budget": 1.0})
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    (record,) = read_records(tmp_path / "out" / "shard-00000" / "results.jsonl")
    assert record["error"]["kind"] == "metric"
    assert record["error"]["message"].startswith("FailsInTheShardMetric: ")
    assert "ValueError: cannot be built in a shard" in record["error"]["message"]
    assert record["metrics"]["exact_match"]["success"] is True  # the other metrics of the case still ran


def test_synchronous_metrics_keep_many_judge_calls_in_flight(tmp_path: Path, evaluator_cli) -> None:
    """A sync-only metric runs in worker threads that wait on the loop's judge calls: there must be enough of them
    for the endpoint's limit (16 here), not asyncio's default handful (CPU count + 4)."""
    from openai_stub.server import run_stub_in_process

    base_url, stop = run_stub_in_process(latency=0.3)
    try:
        cases = [single_turn_case(f"c{i:02d}", actual_output="Paris.") for i in range(48)]
        metrics = [{"type": "custom", "class": f"{PKG}:JudgedPolitenessMetric"}]
        suite = write_suite(tmp_path, cases, base_url=base_url, metrics=metrics, target=None)
        done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
        assert done.returncode == 0, done.stderr
    finally:
        stop()
    manifest = json.loads((tmp_path / "out" / "shard-00000" / "manifest.json").read_text())
    (endpoint,) = manifest["endpoints"].values()
    assert endpoint["calls"] == 48
    assert endpoint["peak_in_flight"] >= 12, endpoint


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_score_that_is_no_number_is_an_error_outcome_never_a_pass(
    tmp_path: Path, stub: str, evaluator_cli, value: str
) -> None:
    """A custom metric's NaN or infinite score (with `success` set) would make every mean and interval of the
    report NaN: the case is a metric error instead, as a built-in's score outside 0..1 is."""
    metrics = [{"type": "custom", "name": "fixed", "class": f"{PKG}:FixedScoreMetric", "args": {"value": value}}]
    suite = write_suite(tmp_path, [single_turn_case()], base_url=stub, metrics=metrics, gate={"error_budget": 1.0})
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    (record,) = read_records(tmp_path / "out" / "shard-00000" / "results.jsonl")
    outcome = record["metrics"]["fixed"]
    assert (outcome["score"], outcome["success"], record["success"]) == (None, False, False)
    assert record["error"]["kind"] == "metric" and "is not a number" in record["error"]["message"]
