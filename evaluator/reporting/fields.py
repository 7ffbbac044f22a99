"""Small text helpers shared by the reports, so every output formats the same numbers the same way."""

from __future__ import annotations

import json
from typing import Any

from evaluator.contract import ReportCase


def metric_score(case: ReportCase, metric: str) -> float | None:
    entry = case.metrics.get(metric)
    return entry.score if entry is not None else None


def status(case: ReportCase) -> str:
    """errored (infrastructure), passed or failed (quality)."""
    if case.error is not None:
        return "errored"
    return "passed" if case.success else "failed"


def fmt(value: float | None, spec: str = ".3f") -> str:
    """A number for a table; '–' for none."""
    return "–" if value is None else format(value, spec)


def excerpt(text: Any, limit: int) -> str:
    """One line of at most limit characters, for tables."""
    s = " ".join(str(text if text is not None else "").split())
    return s if len(s) <= limit else s[: max(0, limit - 1)] + "…"


def compress_ranges(indexes: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8': a thousand missing shards still fit in a comment."""
    out: list[str] = []
    ordered = sorted(set(indexes))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(out)


def duration(seconds: float | None) -> str:
    """'42.0 s', '12.5 min' or '3.2 h': wall times span five orders of magnitude."""
    seconds = seconds or 0.0
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def metadata_text(metadata: dict[str, Any], limit: int = 200) -> str:
    """A case's metadata on one line, `key=value` pairs in the dataset's order (values as JSON for non-text)."""
    parts = []
    for key, value in metadata.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        parts.append(f"{key}={shown}")
    return excerpt(", ".join(parts), limit)
