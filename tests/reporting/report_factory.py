"""Schema-valid `evaluator.report/v1` aggregates for the reporting tests.

Hand-built reports let a test construct exactly the regression or shard failure it checks; the real engine's
aggregates are covered separately in test_real_aggregate.py. Scores are deterministic (seeded), so a test can
state its expected numbers.
"""

from __future__ import annotations

import copy
import random
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

METRICS = {"answer_relevancy": 0.7, "exact_match": 0.5}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_case(
    index: int,
    shard: int,
    scores: dict[str, float | None],
    *,
    duration_s: float = 0.5,
    error_kind: str | None = None,
    started: datetime | None = None,
    input_text: str | None = None,
) -> dict[str, Any]:
    """One case record as the aggregate stores it; a None score is a metric error."""
    started = started or datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    metrics: dict[str, Any] = {}
    if error_kind is None:
        for name, score in scores.items():
            threshold = METRICS.get(name, 0.5)
            if score is None:
                metrics[name] = {
                    "score": None,
                    "threshold": threshold,
                    "success": False,
                    "reason": None,
                    "error": "judge returned invalid JSON",
                }
            else:
                metrics[name] = {
                    "score": score,
                    "threshold": threshold,
                    "success": score >= threshold,
                    "reason": f"reason for case-{index:05d} {name}: score {score:.2f}",
                    "error": None,
                }
    success = error_kind is None and all(m["success"] for m in metrics.values())
    return {
        "case_id": f"case-{index:05d}",
        "case_index": index,
        "shard": shard,
        "input": input_text if input_text is not None else f"Question number {index}: what is {index} + {index}? " * 3,
        "expected_output": str(2 * index),
        "actual_output": str(2 * index) if success else "I do not know",
        "metrics": metrics,
        "calls": [
            {
                "type": "target",
                "latency_s": round(duration_s * 0.4, 4),
                "attempts": 1,
                "prompt_tokens": 20,
                "completion_tokens": 10,
                "error": None,
            },
            {
                "type": "judge",
                "latency_s": round(duration_s * 0.5, 4),
                "attempts": 2 if index % 7 == 0 else 1,
                "prompt_tokens": 200,
                "completion_tokens": 40,
                "error": None,
            },
        ],
        "success": success,
        "error": None if error_kind is None else {"kind": error_kind, "message": f"{error_kind} after 3 attempts"},
        "duration_s": duration_s,
        "started_at": started.isoformat(),
        "finished_at": (started + timedelta(seconds=duration_s)).isoformat(),
    }


def finalize(report: dict[str, Any]) -> dict[str, Any]:
    """Recompute totals, metrics, latency and slowest cases from `cases`, as the aggregate would."""
    cases = report["cases"]
    errored = sum(1 for c in cases if c["error"] is not None)
    passed = sum(1 for c in cases if c["error"] is None and c["success"])
    failed = len(cases) - errored - passed
    calls = [call for c in cases for call in c["calls"]]
    report["totals"] = {
        "cases": len(cases),
        "passed": passed,
        "failed": failed,
        "errored": errored,
        "pass_rate": passed / (len(cases) - errored) if len(cases) > errored else 0.0,
        "error_rate": errored / len(cases) if cases else 0.0,
        "wall_time_s": report["totals"].get("wall_time_s", 60.0) if "totals" in report else 60.0,
        "prompt_tokens": sum(c["prompt_tokens"] for c in calls),
        "completion_tokens": sum(c["completion_tokens"] for c in calls),
        "calls": len(calls),
    }
    metrics: dict[str, Any] = {}
    names = sorted({n for c in cases for n in c["metrics"]})
    for name in names:
        entries = [c["metrics"][name] for c in cases if name in c["metrics"]]
        scores = [e["score"] for e in entries if e["score"] is not None]
        metrics[name] = {
            "count": len(entries),
            "errors": sum(1 for e in entries if e["error"]),
            "mean": statistics.fmean(scores) if scores else None,
            "pass_rate": sum(1 for e in entries if e["success"]) / len(entries) if entries else 0.0,
            "p50": _pct(scores, 0.5),
            "p95": _pct(scores, 0.95),
            "threshold": METRICS.get(name, 0.5),
        }
    report["metrics"] = metrics
    latency: dict[str, Any] = {}
    for kind in ("target", "judge"):
        values = [c["latency_s"] for c in calls if c["type"] == kind]
        if values:
            latency[kind] = {
                "count": len(values),
                "mean": statistics.fmean(values),
                "p50": _pct(values, 0.5),
                "p95": _pct(values, 0.95),
                "max": max(values),
            }
    report["latency"] = latency
    kinds: dict[str, int] = {}
    for c in cases:
        if c["error"] is not None:
            kinds[c["error"]["kind"]] = kinds.get(c["error"]["kind"], 0) + 1
    report["errors_by_kind"] = kinds
    slowest = sorted(cases, key=lambda c: -c["duration_s"])[:10]
    report["slowest_cases"] = [
        {"case_id": c["case_id"], "shard": c["shard"], "duration_s": c["duration_s"]} for c in slowest
    ]
    return report


def make_report(
    n_cases: int = 20,
    *,
    total_shards: int = 2,
    seed: int = 7,
    run_id: str = "abc123def456-0123456789ab",
    commit: str = "0123456789abcdef0123456789abcdef01234567",
    missing_shards: tuple[int, ...] = (),
    incomplete_shards: tuple[int, ...] = (),
    errored_every: int = 0,
    straggler_shard: int | None = None,
    regression_tolerance: float = 0.05,
    generated_at: str = "2026-11-23T10:30:00+00:00",
) -> dict[str, Any]:
    """A report with n_cases spread contiguously over total_shards; missing shards hold no case."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    per_shard_n = -(-n_cases // total_shards)
    cases: list[dict[str, Any]] = []
    per_shard: list[dict[str, Any]] = []
    for shard in range(total_shards):
        indexes = range(shard * per_shard_n, min(n_cases, (shard + 1) * per_shard_n))
        if shard in missing_shards:
            continue
        slow = 4.0 if shard == straggler_shard else 1.0
        clock = start + timedelta(seconds=shard * 0.3)
        shard_cases = []
        for i in indexes:
            duration = round(rng.uniform(0.3, 0.9) * slow, 4)
            kind = "timeout" if errored_every and i % errored_every == errored_every - 1 else None
            scores: dict[str, float | None] = {
                "answer_relevancy": round(rng.uniform(0.5, 1.0), 4),
                "exact_match": 1.0 if rng.random() < 0.8 else 0.0,
            }
            shard_cases.append(make_case(i, shard, scores, duration_s=duration, error_kind=kind, started=clock))
            clock += timedelta(seconds=duration / 4)  # four cases in flight per shard
        cases.extend(shard_cases)
        wall = (clock - start).total_seconds() + 0.5
        per_shard.append(
            {
                "index": shard,
                "cases": len(shard_cases),
                "errored": sum(1 for c in shard_cases if c["error"]),
                "started_at": (start + timedelta(seconds=shard * 0.3)).isoformat(),
                "finished_at": (start + timedelta(seconds=shard * 0.3 + wall)).isoformat(),
                "wall_time_s": round(wall, 3),
            }
        )
    problems = [
        {"kind": "missing_shard", "message": f"shard {i} has no folder", "shard": i, "file": None, "line": None}
        for i in missing_shards
    ] + [
        {
            "kind": "incomplete_shard",
            "message": f"shard {i} has no manifest.json",
            "shard": i,
            "file": f"shard-{i:05d}/manifest.json",
            "line": None,
        }
        for i in incomplete_shards
    ]
    wall_time = max((s["wall_time_s"] for s in per_shard), default=0.0) + 0.3 * total_shards
    report: dict[str, Any] = {
        "schema": "evaluator.report/v1",
        "run_id": run_id,
        "suite": {"name": "smoke", "hash": "abc123def4567890"},
        "commit": commit,
        "generated_at": generated_at,
        "gate": {
            "min_pass_rate": 0.6,
            "error_budget": 0.05,
            "mode": "block",
            "regression_tolerance": regression_tolerance,
            "thresholds": dict(METRICS),
        },
        "shards": {
            "expected": total_shards,
            "complete": [i for i in range(total_shards) if i not in missing_shards and i not in incomplete_shards],
            "missing": list(missing_shards),
            "incomplete": list(incomplete_shards),
            "per_shard": per_shard,
        },
        "problems": problems,
        "totals": {"wall_time_s": round(wall_time, 3)},
        "cases": cases,
    }
    return finalize(report)


def set_score(report: dict[str, Any], case_id: str, metric: str, score: float | None) -> dict[str, Any]:
    """A copy of report with one case's metric score replaced (None makes it a metric error)."""
    out = copy.deepcopy(report)
    for case in out["cases"]:
        if case["case_id"] == case_id:
            entry = case["metrics"][metric]
            entry["score"] = score
            entry["success"] = score is not None and score >= entry["threshold"]
            entry["error"] = None if score is not None else "judge failed"
            entry["reason"] = f"changed to {score}"
            case["success"] = all(m["success"] for m in case["metrics"].values())
            return finalize(out)
    raise KeyError(case_id)


def drop_cases(report: dict[str, Any], case_ids: set[str]) -> dict[str, Any]:
    out = copy.deepcopy(report)
    out["cases"] = [c for c in out["cases"] if c["case_id"] not in case_ids]
    return finalize(out)
