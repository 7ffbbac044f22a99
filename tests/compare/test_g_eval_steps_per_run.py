"""G-Eval from `criteria`: the steps are written ONCE PER RUN and shared by every shard (issue 13), not once per
pod. The first shard to get there creates them under an exclusive lock file in the run's results folder; the
others wait for and read them. Every manifest records the steps its shard used, and a run whose shards used
different steps is a recorded problem the gate refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openai_stub import get_stats, reset_stats
from tests.helpers import read_records, write_suite

pytestmark = pytest.mark.e2e

CRITERIA = {"type": "g_eval", "name": "correct", "criteria": "Is the answer correct?",
            "evaluation_params": ["input", "actual_output", "expected_output"]}  # fmt: skip
CASES = [{"id": f"c{i}", "input": f"q{i}", "actual_output": "ok", "expected_output": "ok"} for i in range(12)]


def test_steps_are_written_once_per_run_and_every_shard_uses_them(tmp_path: Path, stub: str, evaluator_cli) -> None:
    suite = write_suite(tmp_path, CASES, base_url=stub, metrics=[CRITERIA], target=None)
    out = tmp_path / "out"
    reset_stats(stub)
    done = evaluator_cli("run", str(suite), "--out", str(out), "--workers", "3", "--total-shards", "4")
    assert done.returncode == 0, done.stderr
    # 12 cases scored with one judge call each, plus ONE steps call for the whole run (4 shards, 3 processes).
    assert get_stats(stub)["total"] == 12 + 1
    recorded = json.loads((out / "g_eval_steps.json").read_text())
    assert recorded["schema"] == "evaluator.g_eval_steps/v1"
    assert recorded["metrics"]["correct"]["evaluation_steps"] == ["ok"]
    assert not (out / "g_eval_steps.lock").exists()
    run_ids = {r["run_id"] for i in range(4) for r in read_records(out / f"shard-0000{i}" / "results.jsonl")}
    assert run_ids == {recorded["run_id"]}
    for index in range(4):
        manifest = json.loads((out / f"shard-0000{index}" / "manifest.json").read_text())
        assert manifest["g_eval_steps"] == {"correct": ["ok"]}


def test_a_stale_or_foreign_lock_is_broken_and_the_run_goes_on(tmp_path: Path, stub: str, evaluator_cli) -> None:
    """A holder killed mid-generation leaves its lock behind: the next shard breaks it (no heartbeat for 60 s, or
    a lock of another run) instead of waiting forever."""
    import os
    import time

    suite = write_suite(tmp_path, CASES[:2], base_url=stub, metrics=[CRITERIA], target=None)
    for name, holder, age in (("stale", {"run_id": "this"}, 120), ("foreign", {"run_id": "another-run"}, 0)):
        out = tmp_path / name
        out.mkdir()
        lock = out / "g_eval_steps.lock"
        lock.write_text(json.dumps({**holder, "token": "dead", "host": "gone", "pid": 1}))
        os.utime(lock, (time.time() - age, time.time() - age))
        done = evaluator_cli("run", str(suite), "--out", str(out), "--run-id", "this", timeout=120)
        assert done.returncode == 0, done.stderr
        assert "broke the G-Eval steps lock" in done.stderr
        assert not lock.exists() and json.loads((out / "g_eval_steps.json").read_text())["run_id"] == "this"


def test_shards_that_used_different_steps_are_a_recorded_problem(tmp_path: Path, stub: str, evaluator_cli) -> None:
    suite = write_suite(tmp_path, CASES, base_url=stub, metrics=[CRITERIA], target=None)
    out = tmp_path / "out"
    for index in (0, 1):
        done = evaluator_cli("run", str(suite), "--out", str(out), "--shard-index", str(index), "--total-shards", "2")
        assert done.returncode == 0, done.stderr
    # As if shard 1 had generated its own steps (an older evaluator, or two writers racing past a broken lock).
    path = out / "shard-00001" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["g_eval_steps"] = {"correct": ["Other steps."]}
    path.write_text(json.dumps(manifest))
    report = tmp_path / "report.json"
    assert evaluator_cli("aggregate", str(out), "--out", str(report), "-q").returncode == 0
    problems = json.loads(report.read_text())["problems"]
    assert [p["kind"] for p in problems] == ["mixed_g_eval_steps"]
    assert "scored G-Eval with different evaluation steps: shards 0; shards 1" in problems[0]["message"]
    done = evaluator_cli("gate", str(report))
    assert done.returncode == 1 and "mixed_g_eval_steps" in done.stderr


def test_prepare_writes_the_steps_before_any_shard(tmp_path: Path, stub: str, evaluator_cli) -> None:
    """The optional `evaluator prepare`: one steps call, then the shards make none."""
    suite = write_suite(tmp_path, CASES, base_url=stub, metrics=[CRITERIA], target=None)
    out = tmp_path / "out"
    reset_stats(stub)
    done = evaluator_cli("prepare", str(suite), "--out", str(out), "--run-id", "r1", "--json")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["variants"] == ["default"] and facts["units"] == 12 and facts["g_eval_steps"] == {"correct": ["ok"]}
    assert get_stats(stub)["total"] == 1
    done = evaluator_cli(
        "run", str(suite), "--out", str(out), "--run-id", "r1", "--workers", "2", "--total-shards", "2"
    )
    assert done.returncode == 0, done.stderr
    assert get_stats(stub)["total"] == 1 + 12
