"""Small, typed accessors over the report dict, so every output reads the same numbers the same way."""

from __future__ import annotations

import math
from typing import Any


def num(value: Any, default: float = 0.0) -> float:
    """A finite float from a JSON value, or default (None, strings, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    f = float(value)
    return f if math.isfinite(f) else default


def opt_num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def integer(value: Any, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def section(report: dict[str, Any], name: str) -> dict[str, Any]:
    value = report.get(name)
    return value if isinstance(value, dict) else {}


def items(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = report.get(name)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def int_list(value: Any) -> list[int]:
    return (
        sorted({int(v) for v in value if isinstance(v, int) and not isinstance(v, bool)})
        if isinstance(value, list)
        else []
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def metric_score(case: dict[str, Any], metric: str) -> float | None:
    entry = case.get("metrics", {}).get(metric)
    return opt_num(entry.get("score")) if isinstance(entry, dict) else None


def case_error(case: dict[str, Any]) -> dict[str, Any] | None:
    err = case.get("error")
    return err if isinstance(err, dict) else None


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


def duration(seconds: float) -> str:
    """'42.0 s', '12.5 min' or '3.2 h': wall times span five orders of magnitude."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
