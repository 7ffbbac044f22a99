"""Test cases from JSONL, CSV or DeepEval's goldens JSON, each with a stable id and its source line.

Users bring DeepEval datasets unchanged (`EvaluationDataset.save_as("json" | "csv" | "jsonl")`). A case without
an `id` gets one derived from its content, so a re-run, a resumed shard and a baseline all agree on identity.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.errors import InputError, location

LIST_FIELDS = ("context", "retrieval_context")
TEXT_FIELDS = ("input", "expected_output", "actual_output")
KNOWN_FIELDS = {"id", *TEXT_FIELDS, *LIST_FIELDS}
# Present in DeepEval's exports; carried through untouched.
DEEPEVAL_EXTRA_FIELDS = {
    "name",
    "comments",
    "source_file",
    "tools_called",
    "expected_tools",
    "token_cost",
    "input_token_count",
    "output_token_count",
    "additional_metadata",
    "custom_column_key_values",
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


def content_id(fields: dict[str, Any]) -> str:
    """A short, stable id from the fields that define a case."""
    canonical = json.dumps({k: fields.get(k) for k in ("input", "expected_output", *LIST_FIELDS)}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


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
    if not reader.fieldnames or "input" not in reader.fieldnames:
        raise InputError(f"{location(str(path), 1, 'input')}: the CSV header must have an 'input' column")
    for row in reader:
        if None in row:
            raise InputError(f"{location(str(path), reader.line_num)}: more cells than header columns")
        parsed: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items() if k}
        for field in LIST_FIELDS:
            value = parsed.get(field)
            if isinstance(value, str):
                parsed[field] = _csv_list(path, reader.line_num, field, value)
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


def _to_case(path: Path, line: int, row: dict[str, Any], index: int) -> Case:
    unknown = sorted(set(row) - KNOWN_FIELDS - DEEPEVAL_EXTRA_FIELDS)
    if unknown:
        raise InputError(
            f"{location(str(path), line, unknown[0])}: unknown field (known: {', '.join(sorted(KNOWN_FIELDS))})"
        )
    value = row.get("input")
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{location(str(path), line, 'input')}: required, must be a non-empty string")
    for field in ("expected_output", "actual_output"):
        if row.get(field) is not None and not isinstance(row[field], str):
            raise InputError(f"{location(str(path), line, field)}: must be a string")
    lists: dict[str, tuple[str, ...] | None] = {}
    for field in LIST_FIELDS:
        items = row.get(field)
        if items is None:
            lists[field] = None
        elif isinstance(items, list) and all(isinstance(i, str) for i in items):
            lists[field] = tuple(items)
        else:
            raise InputError(f"{location(str(path), line, field)}: must be a list of strings")
    case_id = row.get("id")
    if case_id is None:
        case_id = content_id(row)
    elif not isinstance(case_id, str | int) or isinstance(case_id, bool) or str(case_id).strip() == "":
        raise InputError(f"{location(str(path), line, 'id')}: must be a non-empty string or integer")
    return Case(
        id=str(case_id),
        index=index,
        line=line,
        input=value,
        expected_output=row.get("expected_output"),
        actual_output=row.get("actual_output"),
        context=lists["context"],
        retrieval_context=lists["retrieval_context"],
    )
