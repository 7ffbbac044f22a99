"""The README's main job against the real built-in LLM (llama.cpp serving SmolLM2-135M on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import read_report_json

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_runs_shards_aggregates_and_gates_on_a_real_model(tmp_path: Path, evaluator_cli) -> None:
    pytest.importorskip("llama_cpp", reason="the 'demo' extra is installed by scripts/test.sh")
    out = tmp_path / "demo-out"
    done = evaluator_cli("demo", "--out", str(out), "--workers", "2", subprocess=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = read_report_json(out / "report.json")
    assert report["problems"] == []
    assert report["shards"]["complete"] == [0, 1]
    assert report["totals"]["cases"] == 8 and report["totals"]["errored"] == 0
    target_calls = [c for case in report["cases"] for c in case["calls"] if c["type"] == "target"]
    assert len(target_calls) == 8 and all(c["completion_tokens"] > 0 for c in target_calls)
    assert all(case["actual_output"].strip() for case in report["cases"])  # the model really answered
    assert report["metrics"]["answer_relevancy"]["count"] == 8  # the model really judged, in valid JSON
    assert "gate: " in done.stderr
    # Running it again resumes: nothing is evaluated twice.
    again = evaluator_cli("demo", "--out", str(out), "--workers", "2", subprocess=True, timeout=900)
    assert again.returncode == 0
    assert "already complete" in again.stderr
    assert json.loads((out / "report.json").read_text())["totals"]["cases"] == 8
