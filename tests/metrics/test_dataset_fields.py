"""Tool calls and conversations in datasets, read as DeepEval writes them (`EvaluationDataset.save_as`), parsed
into DeepEval's own `ToolCall` and `Turn` models at load time; malformed ones are exit 2 with file, line, field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from deepeval.dataset import ConversationalGolden, EvaluationDataset, Golden
from deepeval.test_case import ToolCall, Turn

from evaluator.dataset import load_dataset
from evaluator.errors import InputError
from tests.metrics.conftest import conversation_case, single_turn_case

SEARCH = ToolCall(name="search", input_parameters={"query": "capital of France"}, output="Paris")
WEATHER = ToolCall(name="weather", input_parameters={"city": "Paris"})


def _export(dataset: EvaluationDataset, tmp_path: Path, file_type: str) -> Path:
    return Path(dataset.save_as(file_type, str(tmp_path), file_name=f"export-{file_type}"))


@pytest.mark.parametrize("file_type", ["json", "jsonl", "csv"])
def test_deepeval_tool_call_exports_load_as_deepeval_tool_calls(tmp_path: Path, file_type: str) -> None:
    goldens = [
        Golden(input="Weather in the capital?", actual_output="Sunny.", tools_called=[SEARCH, WEATHER],
               expected_tools=[SEARCH, WEATHER]),
        Golden(input="Capital of France?", actual_output="Paris.", tools_called=[SEARCH], expected_tools=[WEATHER]),
    ]  # fmt: skip
    path = _export(EvaluationDataset(goldens=goldens), tmp_path, file_type)
    cases = load_dataset(path)
    assert [c.tools_called for c in cases] == [(SEARCH, WEATHER), (SEARCH,)]
    assert [c.expected_tools for c in cases] == [(SEARCH, WEATHER), (WEATHER,)]
    assert all(isinstance(t, ToolCall) for c in cases for t in (c.tools_called or ()))
    assert cases[0].id != cases[1].id


@pytest.mark.parametrize("file_type", ["json", "jsonl", "csv"])
def test_deepeval_conversational_exports_load_as_conversations(tmp_path: Path, file_type: str) -> None:
    turns = [
        Turn(role="user", content="What is the capital of France?"),
        Turn(role="assistant", content="Paris.", retrieval_context=["Paris is the capital of France."],
             tools_called=[SEARCH]),
    ]  # fmt: skip
    goldens = [
        ConversationalGolden(scenario="Geography help", turns=turns, expected_outcome="Learns the capital."),
        ConversationalGolden(scenario="Small talk", turns=[Turn(role="user", content="Hi"),
                                                           Turn(role="assistant", content="Hello!")]),
    ]  # fmt: skip
    path = _export(EvaluationDataset(goldens=goldens), tmp_path, file_type)
    first, second = load_dataset(path)
    assert first.conversational and second.conversational
    assert first.turns is not None and [(t.role, t.content) for t in first.turns] == [
        (t.role, t.content) for t in turns
    ]
    assert first.turns[1].retrieval_context == ["Paris is the capital of France."]
    assert first.turns[1].tools_called == [SEARCH]
    assert (first.scenario, first.expected_outcome) == ("Geography help", "Learns the capital.")
    assert first.input == "Geography help"  # what the reports show as the case's input
    assert first.actual_output == "user: What is the capital of France?\nassistant: Paris."
    assert second.expected_outcome is None


def test_content_ids_of_single_turn_cases_without_new_fields_do_not_change(tmp_path: Path) -> None:
    """Ids derived from content tie a run to its baseline: adding fields to the loader must not move them."""
    from evaluator.dataset import content_id

    assert (
        content_id({"input": "q", "expected_output": "x"}) == "1bcfcad77291aa94"
    )  # what the loader gave before tool calls and turns existed
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"input": "q", "expected_output": "x"}) + "\n")
    assert load_dataset(path)[0].id == "1bcfcad77291aa94"


def _row(**changes: Any) -> dict[str, Any]:
    return single_turn_case(**changes)


BAD_ROWS: list[tuple[str, dict[str, Any], str]] = [
    ("tools-not-list", _row(tools_called={"name": "x"}), "field 'tools_called': must be a list of tool calls"),
    ("tool-not-object", _row(tools_called=["search"]), "field 'tools_called[0]': must be an object"),
    ("tool-no-name", _row(expected_tools=[{"input_parameters": {}}]), "field 'expected_tools[0].name': Field required"),
    ("tool-bad-params", _row(tools_called=[{"name": "s", "input_parameters": "q"}]),
     "field 'tools_called[0].input_parameters'"),
    ("turns-empty", conversation_case(turns=[]), "field 'turns': must be a non-empty list"),
    ("turn-role", conversation_case(turns=[{"role": "system", "content": "x"}]), "field 'turns[0].role': must be 'user' or 'assistant'"),
    ("turn-content", conversation_case(turns=[{"role": "user"}]), "field 'turns[0].content': required"),
    ("turn-retrieval", conversation_case(turns=[{"role": "assistant", "content": "a", "retrieval_context": "r"}]),
     "field 'turns[0].retrieval_context'"),
    ("no-assistant-turn", conversation_case(turns=[{"role": "user", "content": "hi"}]),
     "field 'turns': no assistant turn; the evaluator scores recorded conversations"),
    ("conversation-actual-output", conversation_case(actual_output="x"), "field 'actual_output': a conversational case"),
    ("conversation-expected-output", conversation_case(expected_output="x"), "use 'expected_outcome'"),
    ("conversation-retrieval", conversation_case(retrieval_context=["r"]), "put it on the assistant turns"),
    ("single-turn-scenario", _row(scenario="s"), "field 'scenario': only a conversational case"),
    ("scenario-type", conversation_case(scenario=3), "field 'scenario': must be a string"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "message"), [b[1:] for b in BAD_ROWS], ids=[b[0] for b in BAD_ROWS])
def test_malformed_tool_calls_and_turns_name_file_line_and_field(tmp_path: Path, row: dict, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"input": "fine", "id": "ok"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(InputError) as error:
        load_dataset(path)
    assert error.value.message.startswith(f"{path}:2: field '")
    assert message in error.value.message


def test_csv_tool_cells_with_bad_json_name_the_cell(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('input,tools_called\nq,"[{""name"": ""s""}"\n')
    with pytest.raises(InputError, match=r"d\.csv:2: field 'tools_called': invalid JSON"):
        load_dataset(path)
