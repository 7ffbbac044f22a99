"""Each metric's declared needs are checked against every case before any call: exit 2 naming the dataset file,
the case's line, the missing field and the metric; nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import read_records, write_suite
from tests.metrics.conftest import conversation_case, single_turn_case

FIRST_OK = single_turn_case("ok")
CONVERSATION_OK = conversation_case("ok")

# (id, metric, second case, expected stderr fragment)
MISSING: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("contextual_precision", {"type": "contextual_precision"}, single_turn_case("b", retrieval_context=None),
     "data.jsonl:2: field 'retrieval_context': required by metric 'contextual_precision' but missing"),
    ("contextual_recall", {"type": "contextual_recall"}, single_turn_case("b", expected_output=None),
     "data.jsonl:2: field 'expected_output': required by metric 'contextual_recall' but missing"),
    ("contextual_relevancy", {"type": "contextual_relevancy"}, single_turn_case("b", retrieval_context=None),
     "data.jsonl:2: field 'retrieval_context': required by metric 'contextual_relevancy' but missing"),
    ("hallucination", {"type": "hallucination"}, single_turn_case("b", context=None),
     "data.jsonl:2: field 'context': required by metric 'hallucination' but missing"),
    ("tool_correctness-called", {"type": "tool_correctness"}, single_turn_case("b", tools_called=None),
     "data.jsonl:2: field 'tools_called': required by metric 'tool_correctness' but missing"),
    ("tool_correctness-expected", {"type": "tool_correctness"}, single_turn_case("b", expected_tools=None),
     "data.jsonl:2: field 'expected_tools': required by metric 'tool_correctness' but missing"),
    ("argument_correctness", {"type": "argument_correctness"}, single_turn_case("b", tools_called=None),
     "data.jsonl:2: field 'tools_called': required by metric 'argument_correctness' but missing"),
    ("g_eval-params", {"type": "g_eval", "name": "uses_tools", "criteria": "c",
                       "evaluation_params": ["input", "actual_output", "expected_tools"]},
     single_turn_case("b", expected_tools=None),
     "data.jsonl:2: field 'expected_tools': required by metric 'uses_tools' but missing"),
    ("conversational-on-single", {"type": "knowledge_retention"}, single_turn_case("b"),
     "data.jsonl:1: field 'turns': required by metric 'knowledge_retention' (it scores conversations) but missing"),
    ("single-on-conversation", {"type": "answer_relevancy"}, conversation_case("b"),
     "data.jsonl:2: field 'turns': metric 'answer_relevancy' scores single-turn cases"),
    ("role_adherence", {"type": "role_adherence"}, conversation_case("b", chatbot_role=None),
     "data.jsonl:2: field 'chatbot_role': required by metric 'role_adherence' but missing"),
    ("turn_contextual_recall", {"type": "turn_contextual_recall"}, conversation_case("b", expected_outcome=None),
     "data.jsonl:2: field 'expected_outcome': required by metric 'turn_contextual_recall' but missing"),
    ("turn_faithfulness", {"type": "turn_faithfulness"},
     conversation_case("b", turns=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]),
     "data.jsonl:2: field 'retrieval_context': required by metric 'turn_faithfulness' (on at least one turn) but missing"),
    ("conversational_g_eval", {"type": "conversational_g_eval", "name": "g", "criteria": "c",
                               "evaluation_params": ["role", "content", "scenario"]},
     conversation_case("b", scenario=None), "data.jsonl:2: field 'scenario': required by metric 'g' but missing"),
]  # fmt: skip


@pytest.mark.parametrize(("metric", "second", "expected"), [m[1:] for m in MISSING], ids=[m[0] for m in MISSING])
def test_missing_declared_field_exits_2_before_any_call(
    tmp_path: Path, evaluator_cli, metric: dict[str, Any], second: dict[str, Any], expected: str
) -> None:
    first = CONVERSATION_OK if metric["type"] in _conversational() and "turns" in second else FIRST_OK
    suite = write_suite(tmp_path, [first, second], metrics=[metric])  # the server at :9 is never called
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"error: {tmp_path / 'data.jsonl'}:" in done.stderr
    assert expected in done.stderr
    assert not (tmp_path / "out").exists()


def _conversational() -> frozenset[str]:
    from evaluator.metric_types import REGISTRY

    return frozenset(name for name, entry in REGISTRY.items() if entry.conversational)


@pytest.mark.e2e
def test_role_adherence_takes_the_suite_role_for_cases_without_one(tmp_path: Path, stub: str, evaluator_cli) -> None:
    metric = {"type": "role_adherence", "chatbot_role": "a patient geography tutor"}
    suite = write_suite(tmp_path, [conversation_case("b", chatbot_role=None)], base_url=stub, metrics=[metric])
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    (record,) = read_records(tmp_path / "out" / "shard-00000" / "results.jsonl")
    assert record["metrics"]["role_adherence"]["error"] is None
    assert record["metrics"]["role_adherence"]["score"] is not None


def test_suite_without_judge_is_refused_for_judged_catalogue_metrics(tmp_path: Path, evaluator_cli) -> None:
    suite = write_suite(tmp_path, [FIRST_OK], metrics=[{"type": "bias"}], judge=None)
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "LLM-judged metrics need a 'judge' endpoint" in done.stderr
    # Tool correctness without `available_tools` never calls a judge: a suite without one runs it.
    recorded = single_turn_case("ok", actual_output="Paris.")
    tools = write_suite(tmp_path / "t", [recorded], metrics=[{"type": "tool_correctness"}], judge=None, target=None)
    done = evaluator_cli("run", str(tools), "--out", str(tmp_path / "t" / "out"))
    assert done.returncode == 0, done.stderr
    (record,) = read_records(tmp_path / "t" / "out" / "shard-00000" / "results.jsonl")
    assert record["metrics"]["tool_correctness"]["score"] == 1.0 and record["calls"] == []


@pytest.mark.parametrize(
    ("metric", "fragment"),
    [
        ({"type": "g_eval", "name": "g"}, "give 'evaluation_steps', or 'criteria'"),
        ({"type": "g_eval", "name": "g", "criteria": "  "}, "give 'evaluation_steps', or 'criteria'"),
        ({"type": "prompt_alignment", "prompt_instructions": []}, "field 'metrics.0.prompt_instructions'"),
        ({"type": "topic_adherence"}, "field 'metrics.0.relevant_topics'"),
        ({"type": "tool_correctness", "evaluation_params": ["name"]}, "field 'metrics.0.evaluation_params.0'"),
        ({"type": "summarization", "n": 0}, "field 'metrics.0.n'"),
        (
            {"type": "conversational_g_eval", "criteria": "c", "evaluation_params": ["input"]},
            "field 'metrics.0.evaluation_params.0'",
        ),
    ],
)
def test_bad_metric_options_exit_2_naming_suite_line_and_field(
    tmp_path: Path, evaluator_cli, metric: dict[str, Any], fragment: str
) -> None:
    suite = write_suite(tmp_path, [FIRST_OK], metrics=[metric])
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {suite}:")
    assert fragment in done.stderr
