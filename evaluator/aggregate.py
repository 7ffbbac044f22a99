"""Merge every shard folder into one report, and write down every reason not to trust it.

Fail closed: a missing, incomplete, corrupt or foreign shard, or a case counted twice, is recorded in `problems`
and the gate refuses any report that has one. The report is the single input of the gate, the reports (JUnit,
Markdown, HTML), the baseline diff and the sizing plan.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluator.errors import InputError
from evaluator.results import (
    MANIFEST_FILE,
    RESULTS_FILE,
    file_sha256,
    read_manifest,
    read_results,
    shard_dirs,
)

REPORT_SCHEMA = "evaluator.report/v1"


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _summary(values: list[float]) -> dict[str, float | int | None]:
    return {
        "count": len(values),
        "mean": sum(values) / len(values) if values else None,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
    }


def aggregate(out: Path, *, expect_shards: int | None = None, gate: dict[str, Any] | None = None) -> dict[str, Any]:
    """Builds the report dict for the run whose shard folders are under `out`."""
    if not out.is_dir():
        raise InputError(f"{out}: not a directory")
    folders = list(shard_dirs(out))
    if not folders:
        raise InputError(f"{out}: no shard-NNNNN folders; did any `evaluator run --out {out}` happen?")
    problems: list[dict[str, Any]] = []

    def problem(
        kind: str, message: str, shard: int | None = None, file: Path | None = None, line: int | None = None
    ) -> None:
        problems.append(
            {
                "kind": kind,
                "message": message,
                "shard": shard,
                "file": str(file) if file else None,
                "line": line,
            }
        )

    manifests: dict[int, dict[str, Any]] = {}
    cases: dict[str, dict[str, Any]] = {}
    case_origin: dict[str, tuple[int, int]] = {}
    per_shard: list[dict[str, Any]] = []
    identities: Counter[tuple[str, str]] = Counter()
    totals_from_shards: Counter[int] = Counter()

    for index, folder in folders:
        results_path, manifest_path = folder / RESULTS_FILE, folder / MANIFEST_FILE
        manifest = read_manifest(manifest_path)
        content = read_results(results_path)
        for bad in content.problems:
            kind = "truncated_line" if bad.message.startswith("truncated") else "corrupt_line"
            problem(kind, f"shard {index}: {bad.message}", index, results_path, bad.line)
        if manifest is None:
            state = "has no manifest" if not manifest_path.exists() else "has an unreadable manifest"
            problem(
                "incomplete_shard",
                f"shard {index} {state}: it was killed or is still running",
                index,
                manifest_path,
            )
        else:
            manifests[index] = manifest
            identities[(manifest["run_id"], manifest["suite_hash"])] += 1
            totals_from_shards[int(manifest["total_shards"])] += 1
            if results_path.exists() and file_sha256(results_path) != manifest.get("results_sha256"):
                problem(
                    "checksum_mismatch",
                    f"shard {index}: results changed after the manifest was written",
                    index,
                    results_path,
                )
        shard_latest: dict[str, tuple[dict[str, Any], int]] = {}
        for record, line in zip(content.records, content.lines, strict=True):
            identities[(str(record.get("run_id")), str(record.get("suite_hash")))] += 1
            if record.get("shard_index") != index:
                problem(
                    "misplaced_record",
                    f"record of shard {record.get('shard_index')} found in shard {index}",
                    index,
                    results_path,
                    line,
                )
            previous = shard_latest.get(record["case_id"])
            if previous is not None and not previous[0].get("error"):
                problem(
                    "duplicate_case",
                    f"case {record['case_id']!r} recorded twice in shard {index} (lines {previous[1]} and {line})",
                    index,
                    results_path,
                    line,
                )
            shard_latest[record["case_id"]] = (record, line)
        for case_id, (record, line) in shard_latest.items():
            if case_id in case_origin:
                other_shard, other_line = case_origin[case_id]
                problem(
                    "duplicate_case",
                    f"case {case_id!r} in shard {index} (line {line}) and shard {other_shard} (line {other_line})",
                    index,
                    results_path,
                    line,
                )
                continue
            case_origin[case_id] = (index, line)
            cases[case_id] = {**record, "shard": index}
        if manifest is not None:
            missing_cases = [cid for cid in manifest.get("case_ids", []) if cid not in shard_latest]
            for cid in missing_cases[:20]:
                problem("missing_case", f"shard {index}: assigned case {cid!r} has no result", index, results_path)
            errored = sum(1 for r, _ in shard_latest.values() if r.get("error"))
            per_shard.append(
                {
                    "index": index,
                    "cases": len(shard_latest),
                    "errored": errored,
                    "started_at": manifest.get("started_at"),
                    "finished_at": manifest.get("finished_at"),
                    "wall_time_s": manifest.get("wall_time_s"),
                }
            )

    expected = expect_shards
    if expected is None and totals_from_shards:
        expected = max(totals_from_shards)
    if len(totals_from_shards) > 1:
        problem("mixed_shard_count", f"shards disagree on the shard count: {sorted(totals_from_shards)}")
    if expect_shards is not None and totals_from_shards and set(totals_from_shards) != {expect_shards}:
        problem("mixed_shard_count", f"expected {expect_shards} shards, shards say {sorted(totals_from_shards)}")
    present = {index for index, _ in folders}
    complete = sorted(manifests)
    missing = sorted(set(range(expected or 0)) - present)
    for index in missing:
        problem("missing_shard", f"shard {index} of {expected} produced no folder", index)
    beyond = sorted(i for i in present if expected is not None and i >= expected)
    for index in beyond:
        problem("unexpected_shard", f"shard {index} is beyond the {expected} expected shards", index)

    run_ids = sorted({rid for rid, _ in identities})
    suites = sorted({sh for _, sh in identities})
    if len(run_ids) > 1:
        problem("mixed_run_id", f"shards belong to different runs: {', '.join(run_ids)}")
    if len(suites) > 1:
        problem(
            "mixed_suite",
            f"shards were run from different suite versions: {', '.join(s[:12] for s in suites)}",
        )

    any_manifest = next(iter(manifests.values()), {})
    ordered = sorted(cases.values(), key=lambda r: (r.get("case_index", 0), r["case_id"]))
    return _build_report(
        ordered,
        problems=problems,
        run_id=any_manifest.get("run_id") or (run_ids[0] if run_ids else None),
        suite_name=any_manifest.get("suite_name"),
        suite_path=any_manifest.get("suite_path"),
        max_calls=any_manifest.get("max_calls_per_endpoint"),
        results_dir=str(out),
        suite_hash=any_manifest.get("suite_hash") or (suites[0] if suites else None),
        commit=any_manifest.get("commit"),
        expected=expected,
        complete=complete,
        missing=missing,
        incomplete=sorted(present - set(manifests)),
        per_shard=per_shard,
        gate=gate or any_manifest.get("gate") or {},
    )


def _build_report(
    ordered: list[dict[str, Any]],
    *,
    problems: list[dict[str, Any]],
    run_id: str | None,
    suite_name: str | None,
    suite_path: str | None,
    max_calls: int | None,
    results_dir: str,
    suite_hash: str | None,
    commit: str | None,
    expected: int | None,
    complete: list[int],
    missing: list[int],
    incomplete: list[int],
    per_shard: list[dict[str, Any]],
    gate: dict[str, Any],
) -> dict[str, Any]:
    errored = [r for r in ordered if r.get("error")]
    passed = [r for r in ordered if r.get("success")]
    judged = len(ordered) - len(errored)
    metric_scores: dict[str, list[float]] = {}
    metric_pass: Counter[str] = Counter()
    metric_count: Counter[str] = Counter()
    metric_errors: Counter[str] = Counter()
    thresholds: dict[str, float] = {}
    latency: dict[str, list[float]] = {}
    errors_by_kind: Counter[str] = Counter()
    prompt_tokens = completion_tokens = calls = 0
    for record in ordered:
        if record.get("error"):
            errors_by_kind[record["error"].get("kind", "unknown")] += 1
        for name, outcome in (record.get("metrics") or {}).items():
            thresholds.setdefault(name, outcome.get("threshold"))
            if outcome.get("error"):
                metric_errors[name] += 1
                continue
            metric_count[name] += 1
            if outcome.get("score") is not None:
                metric_scores.setdefault(name, []).append(float(outcome["score"]))
            if outcome.get("success"):
                metric_pass[name] += 1
        for call in record.get("calls") or []:
            calls += 1
            prompt_tokens += int(call.get("prompt_tokens") or 0)
            completion_tokens += int(call.get("completion_tokens") or 0)
            if not call.get("error"):
                latency.setdefault(call["type"], []).append(float(call["latency_s"]))
    metrics = {}
    for name in sorted(set(metric_count) | set(metric_errors)):
        summary = _summary(metric_scores.get(name, []))
        metrics[name] = {
            "count": metric_count[name],
            "errors": metric_errors[name],
            "mean": summary["mean"],
            "p50": summary["p50"],
            "p95": summary["p95"],
            "pass_rate": metric_pass[name] / metric_count[name] if metric_count[name] else None,
            "threshold": thresholds.get(name),
        }
    starts = [p["started_at"] for p in per_shard if p.get("started_at")]
    ends = [p["finished_at"] for p in per_shard if p.get("finished_at")]
    wall = None
    if starts and ends:
        wall = (datetime.fromisoformat(max(ends)) - datetime.fromisoformat(min(starts))).total_seconds()
    slowest = sorted(ordered, key=lambda r: -float(r.get("duration_s") or 0))[:10]
    return {
        "schema": REPORT_SCHEMA,
        "run_id": run_id,
        "suite": {"name": suite_name, "hash": suite_hash, "path": suite_path, "max_calls_per_endpoint": max_calls},
        "results_dir": results_dir,
        "commit": commit,
        "generated_at": datetime.now(UTC).isoformat(),
        "gate": gate,
        "shards": {
            "expected": expected,
            "complete": complete,
            "missing": missing,
            "incomplete": incomplete,
            "per_shard": per_shard,
        },
        "problems": problems,
        "totals": {
            "cases": len(ordered),
            "passed": len(passed),
            "failed": len(ordered) - len(passed) - len(errored),
            "errored": len(errored),
            "pass_rate": len(passed) / judged if judged else None,
            "error_rate": len(errored) / len(ordered) if ordered else None,
            "wall_time_s": wall,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "calls": calls,
        },
        "metrics": metrics,
        "latency": {kind: _summary(values) for kind, values in sorted(latency.items())},
        "errors_by_kind": dict(errors_by_kind.most_common()),
        "slowest_cases": [
            {"case_id": r["case_id"], "shard": r["shard"], "duration_s": r.get("duration_s")} for r in slowest
        ],
        "cases": [
            {
                key: record.get(key)
                for key in (
                    "case_id",
                    "case_index",
                    "shard",
                    "input",
                    "expected_output",
                    "actual_output",
                    "metrics",
                    "calls",
                    "success",
                    "error",
                    "duration_s",
                    "started_at",
                    "finished_at",
                )
            }
            for record in ordered
        ],
    }
