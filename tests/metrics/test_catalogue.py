"""Every metric type a suite accepts runs through DeepEval itself, end to end through `evaluator run`, on a real
OpenAI-compatible server on 127.0.0.1 (the stub answers each DeepEval judge schema with a schema-valid document).

One shard, one case, one metric per test: the case's record must carry a score in 0..1 from the metric, no error,
and (for the judged ones) the judge calls on the shared client in the case's call records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evaluator.metric_types import REGISTRY
from tests.helpers import read_records, write_suite
from tests.metrics.conftest import conversation_case, single_turn_case

pytestmark = pytest.mark.e2e

CUSTOM = "tests.metrics.custom_pkg.metrics"
# (metric spec, conversational case?, judge calls expected?)
CATALOGUE: list[tuple[dict[str, Any], bool, bool]] = [
    ({"type": "exact_match"}, False, False),
    ({"type": "pattern_match", "pattern": "capital"}, False, False),
    ({"type": "json_correctness", "expected_schema": {"type": "object"}}, False, False),
    ({"type": "answer_relevancy"}, False, True),
    ({"type": "faithfulness"}, False, True),
    ({"type": "hallucination"}, False, True),
    ({"type": "contextual_precision"}, False, True),
    ({"type": "contextual_recall"}, False, True),
    ({"type": "contextual_relevancy"}, False, True),
    ({"type": "bias"}, False, True),
    ({"type": "toxicity"}, False, True),
    ({"type": "summarization", "n": 2}, False, True),
    ({"type": "prompt_alignment", "prompt_instructions": ["Answer in one sentence."]}, False, True),
    ({"type": "tool_correctness"}, False, False),
    ({"type": "tool_correctness", "name": "tool_selection", "available_tools": [{"name": "search"}]}, False, True),
    ({"type": "task_completion"}, False, True),
    ({"type": "argument_correctness"}, False, True),
    ({"type": "pii_leakage"}, False, True),
    ({"type": "non_advice", "advice_types": ["financial"]}, False, True),
    ({"type": "misuse", "domain": "geography"}, False, True),
    ({"type": "role_violation", "role": "a geography tutor"}, False, True),
    ({"type": "g_eval", "name": "fixed_steps", "evaluation_steps": ["Compare the answer with the expected output."],
      "evaluation_params": ["input", "actual_output", "expected_output"]}, False, True),
    ({"type": "g_eval", "name": "from_criteria", "criteria": "Is the answer factually correct?"}, False, True),
    ({"type": "conversation_completeness"}, True, True),
    ({"type": "knowledge_retention"}, True, True),
    ({"type": "role_adherence"}, True, True),
    ({"type": "turn_relevancy"}, True, True),
    ({"type": "goal_accuracy"}, True, True),
    ({"type": "topic_adherence", "relevant_topics": ["geography"]}, True, True),
    ({"type": "tool_use", "available_tools": [{"name": "search", "description": "Web search"}]}, True, True),
    ({"type": "turn_faithfulness"}, True, True),
    ({"type": "turn_contextual_precision"}, True, True),
    ({"type": "turn_contextual_recall"}, True, True),
    ({"type": "turn_contextual_relevancy"}, True, True),
    ({"type": "conversational_g_eval", "name": "helpful", "criteria": "Is the assistant helpful?"}, True, True),
    ({"type": "custom", "class": f"{CUSTOM}:KeywordMetric", "args": {"keyword": "paris"}}, False, False),
    ({"type": "custom", "name": "politeness", "class": f"{CUSTOM}:JudgedPolitenessMetric"}, False, True),
    ({"type": "custom", "class": f"{CUSTOM}:AssistantTurnsMetric"}, True, False),
]  # fmt: skip


def _key(spec: dict[str, Any]) -> str:
    return spec.get("name") or (spec["class"].rsplit(":", 1)[1] if spec["type"] == "custom" else spec["type"])


def test_the_catalogue_covers_every_metric_type_of_the_suite() -> None:
    assert {spec["type"] for spec, _, _ in CATALOGUE} == set(REGISTRY)


@pytest.mark.parametrize(("spec", "conversational", "judged"), CATALOGUE, ids=[_key(c[0]) for c in CATALOGUE])
def test_metric_type_runs_through_deepeval_end_to_end(
    tmp_path: Path, module_stub: str, evaluator_cli, spec: dict[str, Any], conversational: bool, judged: bool
) -> None:
    case = conversation_case() if conversational else single_turn_case()
    suite = write_suite(tmp_path, [case], base_url=module_stub, metrics=[spec])
    out = tmp_path / "out"
    done = evaluator_cli("run", str(suite), "--out", str(out))
    assert done.returncode == 0, done.stderr
    (record,) = read_records(out / "shard-00000" / "results.jsonl")
    assert record["error"] is None, record["error"]
    outcome = record["metrics"][_key(spec)]
    assert outcome["error"] is None
    assert 0.0 <= outcome["score"] <= 1.0
    judge_calls = [c for c in record["calls"] if c["type"] == "judge"]
    assert bool(judge_calls) == judged, judge_calls
    assert all(c["status"] == 200 for c in judge_calls)
    target_calls = [c for c in record["calls"] if c["type"] == "target"]
    assert len(target_calls) == (0 if conversational else 1)  # a conversation is scored on its recorded turns


def test_a_deepeval_eval_mode_in_the_environment_cannot_route_judging_elsewhere(
    tmp_path: Path, module_stub: str, evaluator_cli
) -> None:
    """`DEEPEVAL_EVAL_MODE=system_one` would send DeepEval's decisions to a hosted model (TypeSafe's Jev): the
    evaluator pins every metric to `eval_mode="llm"`, so the suite's judge decides and nothing leaves the machine.
    A real process, because DeepEval reads its settings once per process."""
    metrics = [{"type": "bias"}, {"type": "task_completion"}]
    suite = write_suite(tmp_path, [single_turn_case()], base_url=module_stub, metrics=metrics)
    out = tmp_path / "out"
    env = {"DEEPEVAL_EVAL_MODE": "system_one"}
    done = evaluator_cli("run", str(suite), "--out", str(out), subprocess=True, env=env)
    assert done.returncode == 0, done.stderr
    (record,) = read_records(out / "shard-00000" / "results.jsonl")
    assert record["error"] is None, record["error"]
    assert len([c for c in record["calls"] if c["type"] == "judge"]) == 3 + 2  # bias 3, task completion 2
