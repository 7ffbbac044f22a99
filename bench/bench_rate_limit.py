"""Benchmark: throughput and wasted requests under a hosted API's request-rate limit.

Not a test. The stub server runs as a token bucket of RATE requests per second (429 with `Retry-After` and
`retry-after-ms` above it; many hosted APIs count rejected requests against the limit, so each one is waste).
The real `evaluator run` (one shard) evaluates N cases, each 1 target call + AnswerRelevancy (3 judge calls),
against it with the suite's concurrency ceiling set to FACTOR times what the limit allows
(RATE x latency calls in flight). Targets (issue 12): accepted throughput >= 0.9 x RATE and rejected requests
<= 15 % of accepted ones at FACTOR 4.

Then a storm of plain 429s (issue 22): the stub answers a share (default 0.2, "every 5th call") of all calls 429
with only `Retry-After` (no `retry-after-ms`, no `x-ratelimit-*`) whatever the concurrency, and accepts the
rest after LATENCY; the real `evaluator run` evaluates STORM_CASES cases at concurrency C (64). The row is the
whole command's wall time (process start-up included, what a user waits for) against the server-bound ideal
(cases x 4 calls x latency / C), and checks that nothing was lost (every case recorded without an error, the
server's 200s = the calls needed). Target: efficiency >= 0.5. `--baseline DIR` runs the same row with the
evaluator of another checkout first (PYTHONPATH=DIR, e.g. `git worktree add /tmp/base <commit>`), so before and
after are measured back to back on the same stub.

    .venv/bin/python bench/bench_rate_limit.py                       # RATE 40/s, 500 cases, factors 1 and 4; storm
    .venv/bin/python bench/bench_rate_limit.py --rate 20 --cases 300 --factors 4,8 --skip-storm
    .venv/bin/python bench/bench_rate_limit.py --skip-bucket --storm-cases 2000 --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from benchlib import ROOT, count_results, int_list, offline_environ, print_table, stub_process, stub_stats

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


def storm_row(base_url: str, checkout: Path, cases: int, concurrency: int, latency: float) -> dict[str, object]:
    """One whole `evaluator run` (the evaluator of `checkout`) against the storm; wall time from process start."""
    work = Path(tempfile.mkdtemp(prefix="bench-storm-"))
    suite = write_inputs(work, cases, base_url, concurrency)
    reset_stats(base_url)
    out = work / "out"
    env = offline_environ(PYTHONPATH=str(checkout))
    command = [sys.executable, "-m", "evaluator", "run", str(suite), "--out", str(out), "-q", "--run-id", "storm"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
    whole = time.perf_counter() - started
    stats = stub_stats(base_url)
    by_status = stats["by_status"]
    assert isinstance(by_status, dict)
    records, errored = count_results(out)
    manifests = [json.loads(m.read_text()) for m in out.glob("shard-*/manifest.json")]
    changes = [c for m in manifests for e in m.get("endpoints", {}).values() for c in e.get("limit_changes", [])]
    ideal = cases * CALLS_PER_CASE * latency / concurrency
    return {
        "evaluator": _revision(checkout),
        "exit": done.returncode,
        "whole s": whole,
        "run s": max((float(m.get("wall_time_s") or 0.0) for m in manifests), default=0.0),
        "ideal s": ideal,
        "efficiency": ideal / whole,
        "recorded": records,
        "errors": errored,
        "200s": int(by_status.get("200", 0)),
        "429s": int(by_status.get("429", 0)),
        "cuts": sum(1 for c in changes if c["limit"] == "concurrency" and c["reason"] == "overload"),
        "lowest limit": min((float(c["new"]) for c in changes if c["limit"] == "concurrency"), default=concurrency),
        "note": done.stderr.strip().splitlines()[-1][:60] if done.returncode else "",
    }


def _revision(checkout: Path) -> str:
    """The checkout's short commit, `+` when its tracked files differ from it: which evaluator a row measured."""
    git = ["git", "-C", str(checkout)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD"], capture_output=True, check=False).returncode != 0
    return (head.stdout.strip() or checkout.name) + ("+" if dirty else "")


def storm(args: argparse.Namespace) -> None:
    checkouts = [Path(args.baseline).resolve(), ROOT] if args.baseline else [ROOT]
    for checkout in checkouts:
        probe = [sys.executable, "-c", "import evaluator; print(evaluator.__file__)"]
        env = offline_environ(PYTHONPATH=str(checkout))
        found = subprocess.run(probe, cwd="/", env=env, capture_output=True, text=True, check=False)
        if not found.stdout.strip().startswith(str(checkout)):
            raise SystemExit(f"{checkout}: PYTHONPATH does not select its evaluator ({found.stdout.strip()})")
    rows = []
    load_before = os.getloadavg()[0]
    with stub_process(latency=args.latency, rate_429=args.storm_share) as base_url:
        for checkout in checkouts:
            rows.append(storm_row(base_url, checkout, args.storm_cases, args.storm_concurrency, args.latency))
    print(f"\nstorm of plain 429s: {args.storm_share:.0%} of calls answered 429 with only Retry-After (1 s), at any "
          f"concurrency; latency {args.latency:g} s; {args.storm_cases} cases x {CALLS_PER_CASE} calls at "
          f"concurrency {args.storm_concurrency}; load average (1 min) {load_before:.1f} -> "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    headers = list(rows[0])
    print_table(headers, [[row[h] for h in headers] for row in rows])
    last = rows[-1]
    needed = args.storm_cases * CALLS_PER_CASE
    lost = last["recorded"] != args.storm_cases or last["errors"] or last["200s"] != needed
    ok = float(last["efficiency"]) >= 0.5 and not lost  # type: ignore[arg-type]
    print(f"\nstorm: {float(last['efficiency']):.2f} of the server-bound ideal (target >= 0.50), "  # type: ignore[arg-type]
          f"{'something LOST' if lost else 'nothing lost'}: {'met' if ok else 'NOT met'}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=40.0, help="the server's limit, requests per second")
    parser.add_argument("--latency", type=float, default=0.2, help="stub latency per accepted call, seconds")
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--factors", type=int_list, default=[1, 4], help="ceiling / (rate x latency), comma list")
    parser.add_argument("--skip-bucket", action="store_true", help="only the storm")
    parser.add_argument("--skip-storm", action="store_true", help="only the token bucket")
    parser.add_argument("--storm-cases", type=int, default=2000)
    parser.add_argument("--storm-concurrency", type=int, default=64)
    parser.add_argument("--storm-share", type=float, default=0.2, help="share of calls answered a plain 429")
    parser.add_argument("--baseline", metavar="DIR", help="also run the storm with the evaluator of this checkout")
    args = parser.parse_args()
    if not args.skip_bucket:
        bucket(args)
    if not args.skip_storm:
        storm(args)
    return 0


def bucket(args: argparse.Namespace) -> None:
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


if __name__ == "__main__":
    sys.exit(main())
