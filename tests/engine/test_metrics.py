"""Every metric type the suite accepts runs through DeepEval against a real local server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import read_records, write_suite

pytestmark = pytest.mark.e2e

ALL_METRICS = [
    {"type": "answer_relevancy", "threshold": 0.5},
    {"type": "faithfulness", "threshold": 0.5},
    {"type": "hallucination", "threshold": 0.5},
    {"type": "g_eval", "name": "correctness", "criteria": "Is the answer correct?",
     "evaluation_steps": ["Compare the actual output with the expected output."],
     "evaluation_params": ["input", "actual_output", "expected_output"]},
    {"type": "exact_match"},
    {"type": "pattern_match", "pattern": "^[a-z]+$"},
    {"type": "json_correctness", "expected_schema": {"type": "object", "properties": {"name": {"type": "string"}},
                                                     "required": ["name"]}},
]  # fmt: skip


@pytest.mark.parametrize("structured_output", ["json_schema", "json_object"])
def test_all_metric_types_score_every_case(tmp_path: Path, stub: str, evaluator_cli, structured_output: str) -> None:
    data = [
        {"id": "json", "input": "Answer with exactly: {\"name\": \"x\"}", "expected_output": "{\"name\": \"x\"}",
         "context": ["c"], "retrieval_context": ["r"]},
        {"id": "word", "input": "Answer with exactly: paris", "expected_output": "paris",
         "context": ["Paris is the capital of France."], "retrieval_context": ["Paris is in France."]},
    ]  # fmt: skip
    suite = write_suite(
        tmp_path, data, base_url=stub, metrics=ALL_METRICS, judge={"structured_output": structured_output}
    )
    out = tmp_path / "out"
    done = evaluator_cli("run", str(suite), "--out", str(out))
    assert done.returncode == 0, done.stderr
    records = {r["case_id"]: r for r in read_records(out / "shard-00000" / "results.jsonl")}
    for record in records.values():
        assert record["error"] is None, record["error"]
        assert set(record["metrics"]) == {
            "answer_relevancy", "faithfulness", "hallucination", "correctness", "exact_match", "pattern_match",
            "json_correctness",
        }  # fmt: skip
        for name, outcome in record["metrics"].items():
            assert outcome["error"] is None and outcome["score"] is not None, name
    word, js = records["word"]["metrics"], records["json"]["metrics"]
    assert word["exact_match"]["success"] and word["pattern_match"]["success"]
    assert not js["pattern_match"]["success"]
    assert js["json_correctness"]["success"] and not word["json_correctness"]["success"]
    judge_calls = [c for c in records["word"]["calls"] if c["type"] == "judge"]
    assert len(judge_calls) >= 8  # relevancy 3 + faithfulness + hallucination + g-eval, all on the shared client
    assert json.dumps(records).count("sk-") == 0
