"""Test cases from JSONL, CSV or DeepEval's goldens JSON, each with a stable id and its source line.

Users bring DeepEval datasets unchanged (`EvaluationDataset.save_as("json" | "csv" | "jsonl")`). A case without
an `id` gets one derived from its content, so a re-run, a resumed shard and a baseline all agree on identity.

Columns the evaluator does not know are kept as the case's `metadata` (with DeepEval's own `additional_metadata`
and `custom_column_key_values`, and an explicit `metadata` object): shown in the reports, selectable by profiles,
never part of the case's identity. A key given twice with different values is an error naming the field.

Two kinds of case, as in DeepEval: a single-turn case (`input`, optionally `actual_output`, contexts and tool
calls: an `LLMTestCase`) and a conversational case (DeepEval's `ConversationalGolden` shape: `scenario` and recorded
`turns`: a `ConversationalTestCase`). Tool calls and turns are parsed with DeepEval's own `ToolCall` and `Turn`
models here, at load time, so a malformed one is an error naming its file, line and field, not a mid-run failure.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evaluator.errors import InputError, location

LIST_FIELDS = ("context", "retrieval_context")
TEXT_FIELDS = ("input", "expected_output", "actual_output")
TOOL_FIELDS = ("tools_called", "expected_tools")
# A conversational case (DeepEval's ConversationalGolden/ConversationalTestCase): `turns` makes a case one.
CONVERSATION_TEXT_FIELDS = ("scenario", "expected_outcome", "chatbot_role", "user_description")
KNOWN_FIELDS = {"id", "tags", *TEXT_FIELDS, *LIST_FIELDS, *TOOL_FIELDS, "turns", *CONVERSATION_TEXT_FIELDS}
# DeepEval's goldens keep their own metadata in these objects; they join the case's `metadata`.
METADATA_OBJECTS = ("metadata", "additional_metadata", "custom_column_key_values")
# Present in DeepEval's exports and not about the case (bookkeeping of DeepEval's own tools): dropped.
DEEPEVAL_EXTRA_FIELDS = {
    "name",
    "comments",
    "source_file",
    "persona",
    "expected_labels",
    "token_cost",
    "input_token_count",
    "output_token_count",
    "expectations",
}
CSV_LIST_DELIMITER = "|"  # DeepEval's CSV export joins list cells with this.


@dataclass(frozen=True, slots=True)
class Case:
    """One test case. `index` is its position in the dataset: the sharding key."""

    id: str
    index: int
    line: int
    input: str
    expected_output: str | None = None
    actual_output: str | None = None
    context: tuple[str, ...] | None = None
    retrieval_context: tuple[str, ...] | None = None
    # DeepEval `ToolCall`s: what the system under test called (recorded), and what it should have called.
    tools_called: tuple[Any, ...] | None = None
    expected_tools: tuple[Any, ...] | None = None
    # A conversational case: DeepEval `Turn`s, recorded. Its `actual_output` is the transcript (for the reports).
    turns: tuple[Any, ...] | None = None
    scenario: str | None = None
    expected_outcome: str | None = None
    chatbot_role: str | None = None
    user_description: str | None = None
    # Labels for profiles (`pr`: a sample stratified by the first tag); not part of the case's identity.
    tags: tuple[str, ...] = ()
    # The dataset's other columns (see the module doc): shown in reports, matched by a profile's `metadata`.
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False, compare=False)

    @property
    def conversational(self) -> bool:
        return self.turns is not None

    @property
    def key(self) -> str:
        """What sharding and timings know the case by."""
        return self.id


def content_id(fields: dict[str, Any]) -> str:
    """A short, stable id from the fields that define a case (fields added later count only when present, so the
    ids of existing datasets do not change)."""
    identity = {k: fields.get(k) for k in ("input", "expected_output", *LIST_FIELDS)}
    identity.update({k: fields[k] for k in ("turns", "scenario", *TOOL_FIELDS) if fields.get(k) is not None})
    canonical = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def transcript(turns: tuple[Any, ...]) -> str:
    """A conversation as text, one `role: content` line per turn: what the reports show as its output."""
    return "\n".join(f"{turn.role}: {turn.content}" for turn in turns)


def load_dataset(path: Path, fmt: str | None = None) -> list[Case]:
    """Reads every case, failing on the first bad one with file, line and field."""
    kind = fmt or _guess_format(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read dataset ({exc})") from None
    rows = {"jsonl": _jsonl_rows, "csv": _csv_rows, "goldens": _goldens_rows}[kind](path, text)
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        case = _to_case(path, line, row, len(cases))
        if case.id in seen:
            raise InputError(
                f"{location(str(path), line, 'id')}: duplicate case id {case.id!r} "
                f"(first at line {seen[case.id]}); give each case a unique 'id'"
            )
        seen[case.id] = line
        cases.append(case)
    if not cases:
        raise InputError(f"{path}: dataset has no cases")
    return cases


def _guess_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "goldens"
    raise InputError(f"{path}: unknown dataset format '{suffix}'; use .jsonl, .csv or .json, or set dataset_format")


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    # JSON Lines end at "\n" only: str.splitlines() would also break rows at U+2028, U+0085, \x1c, ...
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"{location(str(path), number)}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise InputError(f"{location(str(path), number)}: each line must be a JSON object")
        yield number, row


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))  # csv splits rows itself; splitlines() would cut U+2028
    if not reader.fieldnames or not {"input", "turns"} & set(reader.fieldnames):
        raise InputError(
            f"{location(str(path), 1, 'input')}: the CSV header must have an 'input' column "
            f"(or 'turns', for conversations)"
        )
    for row in reader:
        if None in row:
            raise InputError(f"{location(str(path), reader.line_num)}: more cells than header columns")
        parsed: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items() if k}
        for field in LIST_FIELDS:
            value = parsed.get(field)
            if isinstance(value, str):
                parsed[field] = _csv_list(path, reader.line_num, field, value)
        for field in (*TOOL_FIELDS, "turns"):  # DeepEval's CSV export writes these as JSON cells
            value = parsed.get(field)
            if isinstance(value, str):
                try:
                    parsed[field] = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"{location(str(path), reader.line_num, field)}: invalid JSON ({exc.msg})"
                    ) from None
        yield reader.line_num, parsed


def _csv_list(path: Path, line: int, field: str, value: str) -> list[str]:
    if value.lstrip().startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"{location(str(path), line, field)}: invalid JSON list ({exc.msg})") from None
        return items if isinstance(items, list) else [value]
    return value.split(CSV_LIST_DELIMITER)


def _goldens_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """DeepEval's goldens JSON is one array; decode item by item to keep each golden's line."""
    decoder = json.JSONDecoder()
    position = _skip_ws(text, 0)
    if position >= len(text) or text[position] != "[":
        raise InputError(f"{location(str(path), 1)}: a goldens file must be a JSON array of objects")
    position = _skip_ws(text, position + 1)
    if position < len(text) and text[position] == "]":
        return
    while True:
        line = text.count("\n", 0, position) + 1
        try:
            row, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise InputError(f"{location(str(path), exc.lineno)}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{location(str(path), line)}: each golden must be a JSON object")
        yield line, row
        position = _skip_ws(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip_ws(text, position + 1)
            continue
        if position < len(text) and text[position] == "]":
            return
        line = text.count("\n", 0, position) + 1
        raise InputError(f"{location(str(path), line)}: expected ',' or ']' between goldens")


def _skip_ws(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _metadata(where: _Where, row: dict[str, Any]) -> dict[str, Any]:
    """The case's metadata: its unknown columns, then the metadata objects (DeepEval's and an explicit one)."""
    metadata: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def put(key: str, value: Any, source: str) -> None:
        if value is None:  # an empty CSV cell, or an explicit null: no value
            return
        if key in metadata and metadata[key] != value:
            raise InputError(f"{where(source)}: metadata {key!r} is also given by '{origin[key]}' with another value")
        metadata[key], origin[key] = value, source

    for key in row:
        if key not in KNOWN_FIELDS and key not in DEEPEVAL_EXTRA_FIELDS and key not in METADATA_OBJECTS:
            put(key, row[key], key)
    for name in METADATA_OBJECTS:
        value = row.get(name)
        if isinstance(value, str) and value.lstrip().startswith("{"):  # a CSV cell holding a JSON object
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where(name)}: invalid JSON object ({exc.msg})") from None
        if value is None:
            continue
        if not isinstance(value, dict):
            raise InputError(f"{where(name)}: must be an object of metadata (name: value)")
        for key, item in value.items():
            put(key, item, f"{name}.{key}")
    return metadata


def _to_case(path: Path, line: int, row: dict[str, Any], index: int) -> Case:
    where = _Where(path, line)
    metadata = _metadata(where, row)
    for field in (*TEXT_FIELDS, *CONVERSATION_TEXT_FIELDS):
        if row.get(field) is not None and not isinstance(row[field], str):
            raise InputError(f"{where(field)}: must be a string")
    lists: dict[str, tuple[str, ...] | None] = {}
    for field in LIST_FIELDS:
        items = row.get(field)
        if items is None:
            lists[field] = None
        elif isinstance(items, list) and all(isinstance(i, str) for i in items):
            lists[field] = tuple(items)
        else:
            raise InputError(f"{where(field)}: must be a list of strings")
    tags = _tags(where, row.get("tags"))
    case_id = row.get("id")
    if case_id is None:
        case_id = content_id(row)
    elif not isinstance(case_id, str | int) or isinstance(case_id, bool) or str(case_id).strip() == "":
        raise InputError(f"{where('id')}: must be a non-empty string or integer")
    if row.get("turns") is not None:
        return _conversation(where, row, str(case_id), index, lists["context"], tags, metadata)
    for field in CONVERSATION_TEXT_FIELDS:
        if row.get(field) is not None:
            raise InputError(f"{where(field)}: only a conversational case (one with 'turns') has this field")
    value = row.get("input")
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where('input')}: required, must be a non-empty string")
    return Case(
        id=str(case_id),
        index=index,
        line=line,
        input=value,
        expected_output=row.get("expected_output"),
        actual_output=row.get("actual_output"),
        context=lists["context"],
        retrieval_context=lists["retrieval_context"],
        tools_called=_tool_calls(where, "tools_called", row.get("tools_called")),
        expected_tools=_tool_calls(where, "expected_tools", row.get("expected_tools")),
        tags=tags,
        metadata=metadata,
    )


def _tags(where: _Where, value: Any) -> tuple[str, ...]:
    """A list of non-empty strings (a CSV cell: `a|b`, or a JSON list)."""
    if value is None:
        return ()
    if isinstance(value, str):  # a CSV cell
        try:
            value = json.loads(value) if value.lstrip().startswith("[") else value.split(CSV_LIST_DELIMITER)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where('tags')}: invalid JSON list ({exc.msg})") from None
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise InputError(f"{where('tags')}: must be a list of non-empty strings")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class _Where:
    path: Path
    line: int

    def __call__(self, field: str) -> str:
        return location(str(self.path), self.line, field)


def _conversation(
    where: _Where,
    row: dict[str, Any],
    case_id: str,
    index: int,
    context: tuple[str, ...] | None,
    tags: tuple[str, ...] = (),
    metadata: dict[str, Any] | None = None,
) -> Case:
    """A conversational case: recorded turns, scored as DeepEval's ConversationalTestCase."""
    hints = {
        "actual_output": "its answers are the assistant turns",
        "expected_output": "use 'expected_outcome'",
        "retrieval_context": "put it on the assistant turns",
        "tools_called": "put it on the assistant turns",
        "expected_tools": "not scored for conversations",
    }
    for field, hint in hints.items():
        if row.get(field) is not None:
            raise InputError(f"{where(field)}: a conversational case (one with 'turns') has no such field ({hint})")
    turns = _turns(where, row["turns"])
    if not any(turn.role == "assistant" for turn in turns):
        raise InputError(
            f"{where('turns')}: no assistant turn; the evaluator scores recorded conversations (the target does not "
            f"generate assistant turns), so record the assistant's answers in 'turns'"
        )
    scenario = row.get("scenario")
    first_user = next((turn.content for turn in turns if turn.role == "user"), None)
    title = scenario if scenario and scenario.strip() else first_user or turns[0].content
    return Case(
        id=case_id,
        index=index,
        line=where.line,
        input=title,
        actual_output=transcript(turns),
        context=context,
        turns=turns,
        scenario=scenario,
        expected_outcome=row.get("expected_outcome"),
        chatbot_role=row.get("chatbot_role"),
        user_description=row.get("user_description"),
        tags=tags,
        metadata=metadata or {},
    )


def _turns(where: _Where, value: Any) -> tuple[Any, ...]:
    from deepeval.test_case import Turn

    if not isinstance(value, list) or not value:
        raise InputError(f"{where('turns')}: must be a non-empty list of turns ({{'role': ..., 'content': ...}})")
    turns = []
    for number, item in enumerate(value):
        if not isinstance(item, dict):
            raise InputError(f"{where(f'turns[{number}]')}: must be an object with 'role' and 'content'")
        if item.get("role") not in ("user", "assistant"):
            raise InputError(f"{where(f'turns[{number}].role')}: must be 'user' or 'assistant'")
        if not isinstance(item.get("content"), str):
            raise InputError(f"{where(f'turns[{number}].content')}: required, must be a string")
        for field in ("mcp_tools_called", "mcp_resources_called", "mcp_prompts_called"):
            if item.get(field) is not None:
                raise InputError(f"{where(f'turns[{number}].{field}')}: MCP calls are not supported")
        try:
            turns.append(Turn.model_validate(item))
        except ValidationError as exc:
            raise InputError(_pydantic_error(where, f"turns[{number}]", exc)) from None
    return tuple(turns)


def _tool_calls(where: _Where, field: str, value: Any) -> tuple[Any, ...] | None:
    """DeepEval `ToolCall`s from a list of objects ({"name": ..., "input_parameters": {...}, "output": ...})."""
    if value is None:
        return None
    from deepeval.test_case import ToolCall

    if not isinstance(value, list):
        raise InputError(f"{where(field)}: must be a list of tool calls ({{'name': ..., 'input_parameters': ...}})")
    calls = []
    for number, item in enumerate(value):
        if not isinstance(item, dict):
            raise InputError(f"{where(f'{field}[{number}]')}: must be an object with at least 'name'")
        try:
            calls.append(ToolCall.model_validate(item))
        except ValidationError as exc:
            raise InputError(_pydantic_error(where, f"{field}[{number}]", exc)) from None
    return tuple(calls)


def _pydantic_error(where: _Where, prefix: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    suffix = ".".join(str(p) for p in first["loc"])
    return f"{where(f'{prefix}.{suffix}' if suffix else prefix)}: {first['msg']}"
