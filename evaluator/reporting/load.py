"""Read and check an aggregate before any report is written from it.

A report generator that dies on a missing key deep inside a template helps no one: every problem here is a
`ReportError` naming the file and the field, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluator.errors import InputError

SCHEMA = "evaluator.report/v1"

# field -> the JSON type it must have when present; the first group must be present.
_REQUIRED: dict[str, type] = {"run_id": str, "totals": dict, "metrics": dict, "cases": list}
_OPTIONAL: dict[str, type] = {
    "suite": dict,
    "gate": dict,
    "shards": dict,
    "problems": list,
    "latency": dict,
    "errors_by_kind": dict,
    "slowest_cases": list,
}
_CASE_REQUIRED: dict[str, type] = {"case_id": str, "metrics": dict}


class ReportError(InputError):
    """An aggregate that cannot be read: the message names the file and the field."""


def _check(obj: dict[str, Any], fields: dict[str, type], where: str, required: bool) -> None:
    for name, kind in fields.items():
        if name not in obj:
            if required:
                raise ReportError(f"{where}: missing field '{name}'")
            continue
        value = obj[name]
        if value is None and not required:
            continue
        if not isinstance(value, kind):
            raise ReportError(f"{where}: field '{name}' must be a JSON {kind.__name__}, got {type(value).__name__}")


def validate(report: Any, source: str = "<report>") -> dict[str, Any]:
    """Return report if it has the shape the reports read; raise ReportError naming source and field."""
    if not isinstance(report, dict):
        raise ReportError(f"{source}: top level must be a JSON object")
    schema = report.get("schema")
    if schema != SCHEMA:
        raise ReportError(f"{source}: field 'schema' is {schema!r}, expected {SCHEMA!r}")
    _check(report, _REQUIRED, source, required=True)
    _check(report, _OPTIONAL, source, required=False)
    for i, case in enumerate(report["cases"]):
        where = f"{source}: cases[{i}]"
        if not isinstance(case, dict):
            raise ReportError(f"{where} must be a JSON object")
        _check(case, _CASE_REQUIRED, where, required=True)
        for name, entry in case["metrics"].items():
            if not isinstance(entry, dict):
                raise ReportError(f"{where}.metrics.{name} must be a JSON object")
            score = entry.get("score")
            if score is not None and not isinstance(score, int | float):
                raise ReportError(f"{where}.metrics.{name}.score must be a number or null")
    for name, entry in report["metrics"].items():
        if not isinstance(entry, dict):
            raise ReportError(f"{source}: metrics.{name} must be a JSON object")
    return report


def load_report(path: str | Path) -> dict[str, Any]:
    """Parse and validate one aggregate file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ReportError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{p}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from None
    return validate(data, str(p))
