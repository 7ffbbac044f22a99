"""G-Eval from `criteria`: the judge writes the steps once per RUN (issue 13 phase 2; phase 1 did it once per
shard), before the first case; every case of every shard is scored with them; they are recorded in the run's
results folder with the judge's settings and reused when a shard resumes (so a run never mixes two sets of steps).
The concurrent side (several shard processes racing for the lock) is tests/compare/test_g_eval_steps_per_run.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openai_stub import get_stats, reset_stats, set_controls
from tests.helpers import read_records, write_suite

pytestmark = pytest.mark.e2e

CRITERIA = {"type": "g_eval", "name": "correct", "criteria": "Is the answer correct?",
            "evaluation_params": ["input", "actual_output", "expected_output"]}  # fmt: skip
CASES = [{"id": f"c{i}", "input": f"q{i}", "actual_output": "ok", "expected_output": "ok"} for i in range(6)]


def _suite(tmp_path: Path, stub: str) -> Path:
    return write_suite(tmp_path, CASES, base_url=stub, metrics=[CRITERIA], target=None)


def test_steps_are_written_once_per_run_recorded_and_used_by_every_case(
    tmp_path: Path, stub: str, evaluator_cli
) -> None:
    suite, out = _suite(tmp_path, stub), tmp_path / "out"
    reset_stats(stub)
    for index in (0, 1):
        done = evaluator_cli("run", str(suite), "--out", str(out), "--shard-index", str(index), "--total-shards", "2")
        assert done.returncode == 0, done.stderr
    # 6 cases scored with one judge call each, plus one steps call for the run: not one per shard, nor per case.
    assert get_stats(stub)["total"] == 6 + 1
    recorded = json.loads((out / "g_eval_steps.json").read_text())
    for index in (0, 1):
        records = read_records(out / f"shard-0000{index}" / "results.jsonl")
        assert all(len(r["calls"]) == 1 and r["metrics"]["correct"]["error"] is None for r in records)
        assert json.loads((out / f"shard-0000{index}" / "manifest.json").read_text())["g_eval_steps"] == {
            "correct": ["ok"]
        }
        assert recorded["schema"] == "evaluator.g_eval_steps/v1"
        assert recorded["run_id"] == records[0]["run_id"] and recorded["suite_hash"] == records[0]["suite_hash"]
        assert recorded["judge"] == {"model": "stub-model", "temperature": 0.0, "seed": 0, "max_tokens": 1024,
                                     "structured_output": "json_schema"}  # fmt: skip
        assert recorded["metrics"] == {
            "correct": {"type": "g_eval", "criteria": "Is the answer correct?",
                        "evaluation_params": ["input", "actual_output", "expected_output"],
                        "evaluation_steps": ["ok"]},  # what the stub's judge wrote
        }  # fmt: skip


def test_a_resumed_shard_reuses_its_recorded_steps(tmp_path: Path, stub: str, evaluator_cli) -> None:
    suite, out = _suite(tmp_path, stub), tmp_path / "out"
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    steps_file = out / "g_eval_steps.json"
    document = json.loads(steps_file.read_text())
    document["metrics"]["correct"]["evaluation_steps"] = ["Recorded step one.", "Recorded step two."]
    steps_file.write_text(json.dumps(document))
    results = out / "shard-00000" / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:3]))  # the shard was killed after three cases
    (out / "shard-00000" / "manifest.json").unlink()
    reset_stats(stub)
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    # No new steps: the three missing cases, and the three kept ones re-scored with the recorded steps (they were
    # scored with other steps: their scoring fingerprint differs; their answers are kept).
    assert get_stats(stub)["total"] == 3 + 3
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert sum(r["rescored"] for r in records) == 3 and len({r["case_id"] for r in records}) == 6
    assert json.loads(steps_file.read_text())["metrics"]["correct"]["evaluation_steps"] == [
        "Recorded step one.", "Recorded step two.",
    ]  # fmt: skip


def test_steps_of_another_run_are_not_reused(tmp_path: Path, stub: str, evaluator_cli) -> None:
    suite, out = _suite(tmp_path, stub), tmp_path / "out"
    folder = out
    folder.mkdir(parents=True)
    (folder / "g_eval_steps.json").write_text(json.dumps({
        "schema": "evaluator.g_eval_steps/v1", "run_id": "another-run", "suite_hash": "x",
        "metrics": {"correct": {"type": "g_eval", "criteria": "Is the answer correct?",
                                "evaluation_params": ["input", "actual_output", "expected_output"],
                                "evaluation_steps": ["stale"]}},
    }))  # fmt: skip
    reset_stats(stub)
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    assert get_stats(stub)["total"] == 6 + 1
    assert json.loads((folder / "g_eval_steps.json").read_text())["metrics"]["correct"]["evaluation_steps"] == ["ok"]


def test_a_judge_that_cannot_write_steps_is_an_infrastructure_failure(tmp_path: Path, stub: str, evaluator_cli) -> None:
    suite = write_suite(
        tmp_path, CASES, base_url=stub, metrics=[CRITERIA], target=None,
        concurrency={"max_attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.02},
    )  # fmt: skip
    set_controls(stub, rate_500=1.0)
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 4, done.stderr
    assert "G-Eval 'correct': the judge could not write evaluation steps from the criteria" in done.stderr
    assert not (tmp_path / "out" / "shard-00000" / "results.jsonl").exists()  # no case was scored without steps
    assert not (tmp_path / "out" / "g_eval_steps.lock").exists()  # the lock is released on failure


def test_fixed_steps_make_no_steps_call_and_no_record(tmp_path: Path, stub: str, evaluator_cli) -> None:
    fixed = {**CRITERIA, "evaluation_steps": ["Compare the answer with the expected output."]}
    suite = write_suite(tmp_path, CASES, base_url=stub, metrics=[fixed], target=None)
    reset_stats(stub)
    assert evaluator_cli("run", str(suite), "--out", str(tmp_path / "out")).returncode == 0
    assert get_stats(stub)["total"] == 6
    assert not (tmp_path / "out" / "g_eval_steps.json").exists()
