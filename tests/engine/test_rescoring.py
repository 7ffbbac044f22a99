"""Gate and metrics are not the run's identity; re-scoring reuses the recorded answers.

The target and the judge are different models on one stub, so its per-model counters tell target calls from
judge calls: changing the gate calls nobody, adding a metric calls the judge only for that metric, changing a
threshold calls nobody (the judge's answers come from the shard's response cache), and `--no-cache` refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import evaluator
from openai_stub.server import get_stats, stub_process
from tests.helpers import cases, read_records, read_report_json, write_suite

pytestmark = pytest.mark.e2e

TARGET, JUDGE = "target-m", "judge-m"
RELEVANCY = {"type": "answer_relevancy", "threshold": 0.5}
CORRECTNESS = {
    "type": "g_eval",
    "name": "correctness",
    "evaluation_steps": ["Check that the answer responds to the question."],
    "evaluation_params": ["input", "actual_output"],
    "threshold": 0.5,
}


@pytest.fixture
def server() -> Iterator[str]:
    with stub_process(latency=0.005) as base_url:
        yield base_url


def _suite(folder: Path, base_url: str, count: int = 8, **overrides: Any) -> Path:
    overrides.setdefault("metrics", [RELEVANCY])
    overrides["target"] = {"model": TARGET, **overrides.get("target", {})}
    overrides["judge"] = {"model": JUDGE, **overrides.get("judge", {})}
    return write_suite(folder, cases(count), base_url=base_url, **overrides)


def _edit(suite: Path, change: Any) -> None:
    content = yaml.safe_load(suite.read_text())
    change(content)
    suite.write_text(yaml.safe_dump(content, sort_keys=False))


def _calls(base_url: str) -> dict[str, int]:
    by_model = get_stats(base_url)["by_model"]
    return {"target": by_model.get(TARGET, 0), "judge": by_model.get(JUDGE, 0)}


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {kind: after[kind] - before[kind] for kind in before}


def _report(out: Path, evaluator_cli: Any, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / f"report-{out.name}.json"
    done = evaluator_cli("aggregate", str(out), "--out", str(path), "-q")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = read_report_json(path)
    return report


def test_the_run_id_depends_on_the_answers_not_on_gate_metrics_or_judge(tmp_path: Path) -> None:
    base = evaluator.load_suite(_suite(tmp_path / "a", "http://127.0.0.1:9/v1"))
    scoring_only = evaluator.load_suite(
        _suite(
            tmp_path / "b", "http://127.0.0.1:9/v1", metrics=[RELEVANCY | {"threshold": 0.9}, CORRECTNESS],
            gate={"min_pass_rate": 0.95, "mode": "warn"}, judge={"model": "another-judge"},
            compare={"resamples": 500},
        )
    )  # fmt: skip
    answers_differ = evaluator.load_suite(_suite(tmp_path / "c", "http://127.0.0.1:9/v1", target={"temperature": 0.7}))
    data_differs = evaluator.load_suite(_suite(tmp_path / "d", "http://127.0.0.1:9/v1", count=9))
    assert base.suite_hash == scoring_only.suite_hash
    assert evaluator.default_run_id(base, "abc") == evaluator.default_run_id(scoring_only, "abc")
    assert len({base.suite_hash, answers_differ.suite_hash, data_differs.suite_hash}) == 3


def test_changing_the_gate_reruns_nothing(tmp_path: Path, server: str, evaluator_cli: Any) -> None:
    suite, out = _suite(tmp_path, server), tmp_path / "out"
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    before = _calls(server)
    assert before["target"] == 8 and before["judge"] == 24
    _edit(suite, lambda s: s["gate"].update(min_pass_rate=0.9))
    again = evaluator_cli("run", str(suite), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert _delta(before, _calls(server)) == {"target": 0, "judge": 0}
    report = _report(out, evaluator_cli, tmp_path)
    assert report["problems"] == [] and report["gate"]["min_pass_rate"] == 0.9
    assert report["totals"]["cases"] == 8


def test_adding_a_metric_calls_the_judge_only_for_it(tmp_path: Path, server: str, evaluator_cli: Any) -> None:
    # What the new metric alone costs the judge, measured on a fresh run of it.
    alone = _suite(tmp_path / "alone", server, metrics=[CORRECTNESS])
    start = _calls(server)
    assert evaluator_cli("run", str(alone), "--out", str(tmp_path / "alone" / "out")).returncode == 0
    cost = _delta(start, _calls(server))["judge"]
    assert cost > 0

    suite, out = _suite(tmp_path / "run", server), tmp_path / "run" / "out"
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    first = read_records(out / "shard-00000" / "results.jsonl")
    before = _calls(server)
    _edit(suite, lambda s: s["metrics"].append(CORRECTNESS))
    again = evaluator_cli("run", str(suite), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert _delta(before, _calls(server)) == {"target": 0, "judge": cost}

    report = _report(out, evaluator_cli, tmp_path)
    assert report["problems"] == []
    assert sorted(c["case_id"] for c in report["cases"]) == [f"c{i:04d}" for i in range(8)]  # exactly once
    for case in report["cases"]:
        assert set(case["metrics"]) == {"answer_relevancy", "correctness"}
        old = next(r for r in first if r["case_id"] == case["case_id"])
        assert case["actual_output"] == old["actual_output"]
        assert case["metrics"]["answer_relevancy"] == old["metrics"]["answer_relevancy"]
    assert report["metrics"]["correctness"]["count"] == 8

    # Nothing changed since: a third run is a no-op, and removing the metric again calls nobody either.
    before = _calls(server)
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    _edit(suite, lambda s: s["metrics"].pop())
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    assert _delta(before, _calls(server)) == {"target": 0, "judge": 0}
    report = _report(out, evaluator_cli, tmp_path)
    assert report["problems"] == [] and set(report["metrics"]) == {"answer_relevancy"}


def test_a_new_threshold_is_applied_from_the_response_cache(tmp_path: Path, server: str, evaluator_cli: Any) -> None:
    suite, out = _suite(tmp_path, server), tmp_path / "out"
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    before = _calls(server)
    _edit(suite, lambda s: s["metrics"][0].update(threshold=0.8))
    again = evaluator_cli("run", str(suite), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert _delta(before, _calls(server)) == {"target": 0, "judge": 0}
    report = _report(out, evaluator_cli, tmp_path)
    assert report["problems"] == [] and report["metrics"]["answer_relevancy"]["threshold"] == 0.8
    assert all(c["metrics"]["answer_relevancy"]["threshold"] == 0.8 for c in report["cases"])

    # --no-cache refuses the recorded judge answers: the judge is asked again; the target's answers stay.
    before = _calls(server)
    _edit(suite, lambda s: s["metrics"][0].update(threshold=0.6))
    again = evaluator_cli("run", str(suite), "--out", str(out), "--no-cache")
    assert again.returncode == 0, again.stderr
    assert _delta(before, _calls(server)) == {"target": 0, "judge": 24}
    assert _report(out, evaluator_cli, tmp_path)["problems"] == []


def test_re_scoring_only_some_shards_is_a_problem(tmp_path: Path, server: str, evaluator_cli: Any) -> None:
    """Fail closed: a report whose shards were scored with different metrics is never gated as one run."""
    suite, out = _suite(tmp_path, server), tmp_path / "out"
    for index in ("0", "1"):
        args = ("run", str(suite), "--out", str(out), "--shard-index", index, "--total-shards", "2")
        assert evaluator_cli(*args).returncode == 0
    _edit(suite, lambda s: s["metrics"][0].update(threshold=0.7))
    args = ("run", str(suite), "--out", str(out), "--shard-index", "0", "--total-shards", "2")
    assert evaluator_cli(*args).returncode == 0
    report = _report(out, evaluator_cli, tmp_path)
    assert [p["kind"] for p in report["problems"]] == ["mixed_scoring"]


def test_limit_runs_the_first_selected_cases(tmp_path: Path, server: str, evaluator_cli: Any) -> None:
    suite = _suite(tmp_path, server, count=12)
    one = evaluator_cli("run", str(suite), "--out", str(tmp_path / "smoke"), "--limit", "3")
    assert one.returncode == 0, one.stderr
    ids = [r["case_id"] for r in read_records(tmp_path / "smoke" / "shard-00000" / "results.jsonl")]
    assert ids == ["c0000", "c0001", "c0002"]
    workers = evaluator_cli("run", str(suite), "--out", str(tmp_path / "w"), "--workers", "2", "--limit", "5")
    assert workers.returncode == 0, workers.stderr
    report = _report(tmp_path / "w", evaluator_cli, tmp_path)
    assert report["problems"] == [] and [c["case_id"] for c in report["cases"]] == [f"c{i:04d}" for i in range(5)]
    assert report["profile"]["selected_cases"] == 5 and report["profile"]["limit"] == 5
    bad = evaluator_cli("run", str(suite), "--out", str(tmp_path / "x"), "--limit", "0")
    assert bad.returncode == 2
