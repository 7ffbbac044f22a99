"""Benchmark: throughput and wasted requests under a hosted API's request-rate limit.

Not a test. The stub server runs as a token bucket of RATE requests per second (429 with `Retry-After` and
`retry-after-ms` above it; many hosted APIs count rejected requests against the limit, so each one is waste).
The real `evaluator run` (one shard) evaluates N cases, each 1 target call + AnswerRelevancy (3 judge calls),
against it with the suite's concurrency ceiling set to FACTOR times what the limit allows
(RATE x latency calls in flight). Targets (issue 12): accepted throughput >= 0.9 x RATE and rejected requests
<= 15 % of accepted ones at FACTOR 4.

    .venv/bin/python bench/bench_rate_limit.py                       # RATE 40/s, 500 cases, factors 1 and 4
    .venv/bin/python bench/bench_rate_limit.py --rate 20 --cases 300 --factors 4,8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from benchlib import int_list, offline_environ, print_table, stub_process, stub_stats

from openai_stub.server import reset_stats

CALLS_PER_CASE = 4


def write_inputs(work: Path, cases: int, base_url: str, ceiling: int) -> Path:
    dataset = work / "cases.jsonl"
    with dataset.open("w", encoding="utf-8") as handle:
        for i in range(cases):
            handle.write(json.dumps({"id": f"case-{i:05d}", "input": f"Q{i}? Answer with exactly: {i}"}) + "\n")
    suite = {
        "name": "bench-rate-limit",
        "dataset": str(dataset),
        "target": {"base_url": base_url, "model": "bench-target", "max_tokens": 64},
        "judge": {"base_url": base_url, "model": "bench-judge"},
        "metrics": [{"type": "answer_relevancy", "threshold": 0.5}],
        "gate": {"min_pass_rate": 0.0, "error_budget": 1.0, "mode": "warn"},
        "concurrency": {"max_calls_per_endpoint": ceiling, "request_timeout_s": 60, "max_attempts": 20},
    }
    path = work / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


def run_row(base_url: str, rate: float, latency: float, cases: int, factor: int) -> dict[str, object]:
    ceiling = max(1, round(factor * rate * latency))
    work = Path(tempfile.mkdtemp(prefix="bench-rate-limit-"))
    suite = write_inputs(work, cases, base_url, ceiling)
    reset_stats(base_url)
    time.sleep(1.5)  # let the bucket refill between rows
    out = work / "out"
    command = [sys.executable, "-m", "evaluator", "run", str(suite), "--out", str(out), "-q", "--run-id", "bench"]
    done = subprocess.run(command, cwd=work, env=offline_environ(), capture_output=True, text=True, check=False)
    stats = stub_stats(base_url)
    manifest = json.loads((out / "shard-00000" / "manifest.json").read_text()) if done.returncode == 0 else {}
    wall = float(manifest.get("wall_time_s") or 0.0)
    by_status = stats["by_status"]
    assert isinstance(by_status, dict)
    accepted = int(by_status.get("200", 0))
    rejected = int(by_status.get("429", 0))
    changes = [c for e in manifest.get("endpoints", {}).values() for c in e.get("limit_changes", [])]
    return {
        "ceiling": ceiling,
        "factor": factor,
        "exit": done.returncode,
        "wall s": wall,
        "accepted": accepted,
        "rejected": rejected,
        "accepted/s": accepted / wall if wall else None,
        "of limit": accepted / wall / rate if wall else None,
        "rejected/accepted": rejected / accepted if accepted else None,
        "limit changes": len(changes),
        "calls needed": cases * CALLS_PER_CASE,
        "note": done.stderr.strip().splitlines()[-1][:80] if done.returncode else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=40.0, help="the server's limit, requests per second")
    parser.add_argument("--latency", type=float, default=0.2, help="stub latency per accepted call, seconds")
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--factors", type=int_list, default=[1, 4], help="ceiling / (rate x latency), comma list")
    args = parser.parse_args()
    rows = []
    with stub_process(latency=args.latency, rate_limit=args.rate) as base_url:
        for factor in args.factors:
            rows.append(run_row(base_url, args.rate, args.latency, args.cases, factor))
    print(f"rate limit {args.rate:g} requests/s (token bucket, 1 s burst), latency {args.latency:g} s, {args.cases} "
          f"cases x {CALLS_PER_CASE} calls; ceiling = factor x rate x latency calls in flight")  # fmt: skip
    headers = list(rows[0])
    print_table(headers, [[row[h] for h in headers] for row in rows])
    worst = next((r for r in rows if r["factor"] == 4), None)
    if worst is not None and worst["of limit"] is not None:
        ok = float(worst["of limit"]) >= 0.9 and float(worst["rejected/accepted"] or 0) <= 0.15  # type: ignore[arg-type]
        print(
            f"\nfactor 4: accepted {worst['of limit']:.2f} of the limit (target >= 0.90), rejected "
            f"{float(worst['rejected/accepted'] or 0):.1%} of accepted (target <= 15%): {'met' if ok else 'NOT met'}"  # type: ignore[arg-type]
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
