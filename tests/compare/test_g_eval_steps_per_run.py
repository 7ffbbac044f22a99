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
