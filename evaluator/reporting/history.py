"""The run history: one JSON line per run, appended, so trends need no database.

A record is small (no cases) and self-describing; the estimated cost uses a price per 1,000 tokens given at
append time (an API price, or a GPU-hour price converted by the operator), recorded beside the cost so a
later price change does not silently rewrite history. Appending the same run id twice is a no-op, so a
retried pipeline stage does not double-count.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.contract import Report
from evaluator.errors import InputError

HISTORY_SCHEMA = "evaluator.history/v1"


class HistoryError(InputError):
    """A history file that cannot be read: the message names the file and the line."""


def summarize(report: Report, price_per_1k_tokens: float = 0.0) -> dict[str, Any]:
    """The history record of one aggregate."""
    totals = report.totals
    tokens = totals.prompt_tokens + totals.completion_tokens
    return {
        "schema": HISTORY_SCHEMA,
        "time": report.generated_at,
        "run_id": report.run_id or "",
        "commit": report.commit or "",
        "suite": report.suite.name or "",
        "cases": totals.cases,
        "passed": totals.passed,
        "failed": totals.failed,
        "errored": totals.errored,
        "pass_rate": totals.pass_rate or 0.0,
        "error_rate": totals.error_rate or 0.0,
        "wall_time_s": totals.wall_time_s or 0.0,
        "shards": report.shards.expected or 0,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "tokens": tokens,
        "price_per_1k_tokens": price_per_1k_tokens,
        "cost": round(tokens / 1000 * price_per_1k_tokens, 6),
        "scores": {name: entry.mean for name, entry in sorted(report.metrics.items())},
        "metric_pass_rates": {name: entry.pass_rate for name, entry in sorted(report.metrics.items())},
    }


def read(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a history file, oldest first; a torn last line (a killed writer) is skipped."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").split("\n")  # JSON Lines: only \n ends a line
        if lines and lines[-1] == "":
            lines.pop()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{p}: cannot read: {exc}") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                continue
            raise HistoryError(f"{p}: line {number}: invalid JSON: {exc.msg}") from None
        if not isinstance(record, dict) or record.get("schema") != HISTORY_SCHEMA:
            raise HistoryError(f"{p}: line {number}: field 'schema' must be {HISTORY_SCHEMA!r}")
        for field in ("time", "run_id"):
            if not isinstance(record.get(field), str):
                raise HistoryError(f"{p}: line {number}: field '{field}' must be a string")
        records.append(record)
    return records


@dataclass(frozen=True)
class AppendResult:
    appended: bool
    record: dict[str, Any]


def append(path: str | Path, record: dict[str, Any]) -> AppendResult:
    """Append record unless its run id is already there; one write + fsync, so a line is never torn."""
    p = Path(path)
    existing = read(p)
    if any(r.get("run_id") == record["run_id"] for r in existing):
        return AppendResult(False, record)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    with p.open("a+b") as fh:
        fh.seek(0)
        content = fh.read()
        if content and not content.endswith(b"\n"):
            # A writer killed mid-line left a torn record (read() skips it): drop it before appending.
            fh.truncate(content.rfind(b"\n") + 1)
        fh.seek(0, os.SEEK_END)
        fh.write(data.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())
    return AppendResult(True, record)
