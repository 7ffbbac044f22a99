"""Benchmark: the evaluator vs `deepeval.evaluate()` on N cases against a server with a fixed 200 ms latency.

Not a test. Each case is 1 target call + AnswerRelevancy (3 judge calls: statements, verdicts, reason), so
ideal wall time = cases x 4 x latency / concurrency (the server is never the bottleneck: the stub answers any
number of calls in parallel). Efficiency = ideal / actual.

Rows:
- evaluator @ C      `evaluator run SUITE --out DIR` (the real CLI, one shard), suite limit C calls in flight
- deepeval defaults  `deepeval.evaluate()` with every default (max_concurrent=20, cache on, timeouts on),
                     judge: DeepEval's own GPTModel with base_url pointing at the stub
- deepeval tuned @ C cache off, DeepEval's timeouts off, max_concurrent=C, no progress output, judge: a
                     DeepEvalBaseLLM on one shared AsyncOpenAI client (--tuned-judge picks another)
- serial (extrap.)   one case at a time, measured on --serial-cases cases and scaled to N

Everything runs on 127.0.0.1; the DeepEval process refuses any non-loopback connection and reports attempts.

    .venv/bin/python bench/bench_throughput.py                            # the full run: 5,000 cases
    .venv/bin/python bench/bench_throughput.py --cases 300 --concurrency 16,64
    .venv/bin/python bench/bench_throughput.py --cases 300 --skip-deepeval
    .venv/bin/python bench/bench_throughput.py --cases 5000 --concurrency 64,128 --variants 1,2 --skip-deepeval

`--variants 1,2` runs the evaluator rows once per variant count: with V variants every case is answered by each of
V named targets (issue 13), so a run is cases x V units of 4 calls and ideal = cases x V x 4 x latency / C. Keeping
the single-variant efficiency with 2 variants is the target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from benchlib import ROOT, count_results, int_list, offline_environ, print_table, stub_process, stub_stats

from openai_stub.server import reset_stats

BENCH = Path(__file__).resolve().parent
CALLS_PER_CASE = 4  # 1 target + 3 judge (AnswerRelevancy: statements, verdicts, reason)
DEEPEVAL_DEFAULT_CONCURRENCY = 20  # deepeval.evaluate.AsyncConfig.max_concurrent


def write_dataset(path: Path, cases: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(cases):
            record = {
                "id": f"case-{i:05d}",
                "input": f"Question {i}: what is {i} plus one? Answer with exactly: {i + 1}",
                "expected_output": str(i + 1),
            }
            handle.write(json.dumps(record) + "\n")


def write_suite(path: Path, dataset: Path, base_url: str, concurrency: int, variants: int = 1) -> None:
    suite: dict[str, Any] = {
        "name": "bench-throughput",
        "description": "bench/bench_throughput.py: 1 target call + answer relevancy per case",
        "dataset": str(dataset),
        "target": {"base_url": base_url, "model": "bench-target", "max_tokens": 64},
        "judge": {"base_url": base_url, "model": "bench-judge", "structured_output": "json_schema"},
        "metrics": [{"type": "answer_relevancy", "threshold": 0.5}],
        "gate": {"min_pass_rate": 0.0, "error_budget": 1.0, "mode": "warn"},
        "concurrency": {"max_calls_per_endpoint": concurrency, "request_timeout_s": 60},
    }
    if variants > 1:  # named targets on the same server: they share its pool and adaptive limit
        suite["variants"] = [
            {"name": f"v{i}", "model": f"bench-target-{i}", "system_prompt": f"Variant {i}."} for i in range(variants)
        ]
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")


def evaluator_environ(code: Path | None) -> dict[str, str]:
    """The child's environment; with `code` (another checkout, `--evaluator`) its `evaluator` package is the one
    imported, so a tree before a change is measured by the same script, dependencies and machine."""
    if code is None:
        return offline_environ()
    return offline_environ(PYTHONPATH=os.pathsep.join(filter(None, (str(code), os.environ.get("PYTHONPATH")))))


def run_evaluator(
    work: Path, dataset: Path, base_url: str, cases: int, concurrency: int, variants: int = 1,
    *, workers: int | None = None, shards: int | None = None, code: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The real CLI as a user runs it; `process_s` is the whole command's wall time (what a user waits for)."""
    name = f"c{concurrency}-v{variants}" + (f"-s{shards}-w{workers}" if workers else "")
    suite = work / f"suite-{name}.yaml"
    out = work / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    write_suite(suite, dataset, base_url, concurrency, variants)
    reset_stats(base_url)
    command = [sys.executable, "-m", "evaluator", "run", str(suite), "--out", str(out), "-q",
               "--run-id", f"bench-{name}", "--commit", "bench"]  # fmt: skip
    if workers:
        command += ["--workers", str(workers), "--total-shards", str(shards or workers)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=evaluator_environ(code), capture_output=True, text=True)
    process_s = time.perf_counter() - started
    records, errored = count_results(out)
    stats = stub_stats(base_url)
    walls = [json.loads(m.read_text())["wall_time_s"] for m in out.glob("shard-*/manifest.json")]
    note = f"exit {done.returncode}" + (f": {done.stderr.strip()[-300:]}" if done.returncode else "")
    runner = "evaluator" if variants == 1 else f"evaluator, {variants} variants"
    if workers:
        runner = f"evaluator, {shards} shards, --workers {workers}"
    return {
        "runner": runner,
        "concurrency": concurrency * (workers or 1),  # calls in flight: each worker runs one shard's limit
        "command": True,  # efficiency from the whole command's wall time
        "workers": workers,
        "cases": cases * variants,  # units: every case answered by every variant
        "variants": variants,
        "shard_s": max(walls) if walls else None,  # the shard's own wall time (from its first call)
        "wall_s": process_s,  # what a user waits for: interpreter start, imports, planning, every shard
        "process_s": process_s,  # plus interpreter start and imports (DeepEval's import alone takes seconds)
        "done": records - errored,
        "server_calls": stats["total"],
        "server_peak": stats["max_in_flight"],
        "note": note,
    }


def time_command(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, done.returncode, done.stderr.strip()[-300:]


def fixed_cost(work: Path, cases: int, repeats: int, code: Path | None) -> dict[str, Any]:
    """A small run against a server that answers at once, so its wall time is all fixed cost, against
    `python -c "import deepeval"` timed in the same loop (alternating, medians): the floor any DeepEval-based
    evaluator pays."""
    dataset = work / f"fixed-{cases}.jsonl"
    write_dataset(dataset, cases)
    env = evaluator_environ(code)
    runs: list[float] = []
    imports: list[float] = []
    note = ""
    with stub_process(latency=0.0) as base_url:
        suite = work / "suite-fixed.yaml"
        write_suite(suite, dataset, base_url, 16)
        for attempt in range(repeats):
            out = work / f"out-fixed-{attempt}"
            command = [sys.executable, "-m", "evaluator", "run", str(suite), "--out", str(out), "-q",
                       "--run-id", f"fixed-{attempt}", "--commit", "bench"]  # fmt: skip
            seconds, code_, error = time_command(command, work, env)
            runs.append(seconds)
            if code_:
                note = f"exit {code_}: {error}"
            seconds, _, _ = time_command([sys.executable, "-c", "import deepeval"], work, env)
            imports.append(seconds)
    run_s, import_s = statistics.median(runs), statistics.median(imports)
    return {"cases": cases, "repeats": repeats, "run_s": run_s, "import_s": import_s, "ratio": run_s / import_s,
            "runs": runs, "imports": imports, "note": note}  # fmt: skip


def run_deepeval(
    mode: str,
    judge: str,
    dataset: Path,
    base_url: str,
    cases: int,
    concurrency: int,
    work: Path,
    timeout: float,
    limit: int | None,
) -> dict[str, Any]:
    folder = work / f"deepeval-{mode}-c{concurrency}"
    folder.mkdir(exist_ok=True)  # DeepEval writes its .deepeval/ cache into the working directory
    reset_stats(base_url)
    command = [sys.executable, str(BENCH / "deepeval_side.py"), mode, "--dataset", str(dataset),
               "--base-url", base_url, "--concurrency", str(concurrency), "--judge", judge]  # fmt: skip
    if limit:
        command += ["--limit", str(limit)]
    env = offline_environ(DEEPEVAL_HOME=str(folder / "home"), PYTHONPATH=str(ROOT))
    log = folder / "output.log"
    started = time.perf_counter()
    try:
        with log.open("w", encoding="utf-8") as handle:
            code = subprocess.run(
                command, cwd=folder, env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout
            )
        result = json.loads(log.read_text(encoding="utf-8").strip().splitlines()[-1])
        note = result["error"] or ""
        if result["blocked_outbound"]:
            note += f" blocked outbound: {result['blocked_outbound'][:3]}"
        done = result["scored"]
        if code.returncode:
            note += f" exit {code.returncode}"
    except subprocess.TimeoutExpired:
        result, done, note = {}, 0, f"killed after {timeout:g}s"
    except (json.JSONDecodeError, IndexError, KeyError):
        result, done, note = {}, 0, f"no result, see {log}"
    process_s = time.perf_counter() - started
    wall = result.get("wall_s", process_s)
    stats = stub_stats(base_url)
    if not result:  # killed: say how far it got, from the server's own counter of judge calls
        judge_calls = int(stats["by_model"].get("gpt-4o-mini", 0)) if isinstance(stats["by_model"], dict) else 0
        note += f"; {judge_calls} of {3 * (limit or cases)} judge calls answered by then"
    measured = limit or cases
    row = {
        "runner": f"deepeval {mode}",
        "judge": judge,
        "concurrency": concurrency,
        "cases": measured,
        "wall_s": wall,  # from the first target call to evaluate()'s return, imports excluded
        "process_s": process_s,
        "done": done,
        "server_calls": stats["total"],
        "server_peak": stats["max_in_flight"],
        "note": note.strip(),
    }
    if mode == "serial" and measured < cases:  # extrapolate linearly to the full case count
        row.update(runner="serial (extrapolated)", cases=cases, wall_s=wall * cases / measured, process_s=None,
                   note=f"measured {measured} cases in {wall:.1f}s; {note}".strip("; "))  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--concurrency", type=int_list, default=[16, 64, 128], help="comma list")
    parser.add_argument("--latency", type=float, default=0.2, help="stub latency per call, seconds")
    parser.add_argument("--skip-deepeval", action="store_true", help="only the evaluator rows")
    parser.add_argument(
        "--variants", type=int_list, default=[1], help="comma list of variant counts for the evaluator rows"
    )
    parser.add_argument("--skip-defaults", action="store_true", help="no deepeval-defaults row")
    parser.add_argument("--skip-serial", action="store_true", help="no serial row")
    parser.add_argument("--tuned-concurrency", type=int_list, default=None, help="default: --concurrency")
    parser.add_argument(
        "--tuned-judge",
        choices=["custom", "gptmodel-shared", "gptmodel"],
        default="custom",
        help="judge of the tuned and serial DeepEval rows (see deepeval_side.py)",
    )
    parser.add_argument("--serial-cases", type=int, default=50, help="cases measured for the serial row")
    parser.add_argument("--deepeval-timeout", type=float, default=3600, help="kill a DeepEval run after this")
    parser.add_argument("--workdir", type=Path, default=None, help="keep datasets and outputs here")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    parser.add_argument(
        "--evaluator",
        type=Path,
        default=None,
        help="measure another checkout's evaluator package (e.g. a worktree of the commit before)",
    )
    parser.add_argument("--skip-single", action="store_true", help="no single-shard evaluator rows")
    parser.add_argument(
        "--workers-row",
        type=int_list,
        default=None,
        metavar="CASES,SHARDS,WORKERS,C",
        help="also a `run --workers` row: CASES cases in SHARDS shards, WORKERS processes, each "
        "shard's limit C (ideal = cases x 4 x latency / (WORKERS x C)); e.g. 2000,8,2,64",
    )
    parser.add_argument(
        "--fixed-cost",
        type=int,
        default=None,
        metavar="CASES",
        help="also the fixed cost of a CASES-case run on a server that answers at once vs "
        "`python -c 'import deepeval'` (target <= 1.5x); e.g. 20",
    )
    parser.add_argument("--fixed-repeats", type=int, default=3)
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    dataset = work / "cases.jsonl"
    write_dataset(dataset, args.cases)
    rows: list[dict[str, Any]] = []

    def report(row: dict[str, Any]) -> None:
        rows.append(row)
        print(f"  {row['runner']} @ {row['concurrency']}: {row['wall_s']:.1f}s {row['note']}", flush=True)
        if args.json:  # partial results survive an interrupted long run
            args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")

    print(f"{os.cpu_count()} CPUs, {args.cases} cases x {CALLS_PER_CASE} calls, latency {args.latency}s; in {work}")
    load_before = os.getloadavg()[0]
    fixed = fixed_cost(work, args.fixed_cost, args.fixed_repeats, args.evaluator) if args.fixed_cost else None
    with stub_process(latency=args.latency) as base_url:
        for variants in [] if args.skip_single else args.variants:
            for concurrency in args.concurrency:
                report(run_evaluator(work, dataset, base_url, args.cases, concurrency, variants, code=args.evaluator))
        if args.workers_row:
            cases, shards, workers, concurrency = args.workers_row
            data = work / f"cases-{cases}.jsonl"
            write_dataset(data, cases)
            report(run_evaluator(work, data, base_url, cases, concurrency, workers=workers, shards=shards,
                                 code=args.evaluator))  # fmt: skip
        if not args.skip_deepeval:
            de = (dataset, base_url, args.cases)
            if not args.skip_defaults:
                concurrency = DEEPEVAL_DEFAULT_CONCURRENCY
                report(run_deepeval("defaults", "gptmodel", *de, concurrency, work, args.deepeval_timeout, None))
            for concurrency in args.tuned_concurrency or args.concurrency:
                report(run_deepeval("tuned", args.tuned_judge, *de, concurrency, work, args.deepeval_timeout, None))
            if not args.skip_serial:
                limit = min(args.serial_cases, args.cases)
                report(run_deepeval("serial", args.tuned_judge, *de, 1, work, args.deepeval_timeout, limit))

    for row in rows:
        ideal = row["cases"] * CALLS_PER_CASE * args.latency / row["concurrency"]
        row["ideal_s"] = ideal
        finished = row["runner"].startswith("serial") or row["done"] >= row["cases"]
        row["cases_per_s"] = (row["cases"] if finished else row["done"]) / row["wall_s"] if row["wall_s"] else None
        row["efficiency"] = ideal / row["wall_s"] if row["wall_s"] and finished else None
        if not finished:
            row["note"] = f"DID NOT FINISH ({row['done']} of {row['cases']} scored); {row['note']}".strip("; ")
    print()
    columns = {
        "runner": "runner",
        "judge": "judge",
        "concurrency": "conc.",
        "variants": "variants",
        "cases": "units",
        "done": "done",
        "wall_s": "wall s",
        "shard_s": "shard s",
        "cases_per_s": "units/s",
        "ideal_s": "ideal s",
        "efficiency": "efficiency",
        "process_s": "process s",
        "server_calls": "calls",
        "server_peak": "peak",
        "note": "note",
    }
    headers, keys = list(columns.values()), list(columns)
    print_table(headers, [[row.get(k) for k in keys] for row in rows])
    print_verdicts(rows)
    if fixed is not None:
        print(f"fixed cost of a {fixed['cases']}-case run (server answering at once, median of {fixed['repeats']}): "
              f"{fixed['run_s']:.2f}s vs `import deepeval` {fixed['import_s']:.2f}s = {fixed['ratio']:.2f}x "
              f"(target <= 1.5x) {fixed['note']}".rstrip())  # fmt: skip
        print(f"  runs {', '.join(f'{s:.2f}' for s in fixed['runs'])}; imports "
              f"{', '.join(f'{s:.2f}' for s in fixed['imports'])}")  # fmt: skip
    load = max(load_before, os.getloadavg()[0])
    print(f"load average (1 min) at start/end: {load_before:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if load > (os.cpu_count() or 1) * 0.75:
        print("WARNING: other work was running on this machine; absolute numbers are pessimistic")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


def print_verdicts(rows: list[dict[str, Any]]) -> None:
    """The issue's targets, checked against this run's rows."""
    ours = {r["concurrency"]: r for r in rows if r["runner"] == "evaluator"}
    for row in rows:
        single = ours.get(row["concurrency"])
        if row.get("variants", 1) > 1 and single and single["efficiency"] and row["efficiency"]:
            print(f"{row['variants']} variants @ {row['concurrency']}: efficiency {row['efficiency']:.2f} vs "
                  f"{single['efficiency']:.2f} single-variant (target: kept)")  # fmt: skip
    tuned = {r["concurrency"]: r for r in rows if r["runner"].startswith("deepeval tuned")}
    defaults = next((r for r in rows if r["runner"] == "deepeval defaults"), None)
    print()
    for concurrency, target in ((64, 0.93), (128, 0.90)):  # issue 22: the whole command's wall time
        if concurrency in ours and ours[concurrency]["efficiency"]:
            print(f"efficiency at concurrency {concurrency} (whole command): {ours[concurrency]['efficiency']:.2f} "
                  f"(target >= {target})")  # fmt: skip
    for row in rows:
        if row.get("workers") and row["efficiency"]:
            print(f"{row['runner']} @ {row['concurrency']} in flight (whole command): efficiency "
                  f"{row['efficiency']:.2f} (target >= 0.85)")  # fmt: skip
    best = min(ours.values(), key=lambda r: r["wall_s"], default=None)
    if best and defaults:
        ratio = defaults["wall_s"] / best["wall_s"]
        if defaults["done"] >= defaults["cases"]:
            print(f"speed-up vs deepeval defaults: {ratio:.1f}x (target >= 5x)")
        else:
            print(f"speed-up vs deepeval defaults: more than {ratio:.1f}x: it gave up after {defaults['wall_s']:.0f}s "
                  f"with {defaults['done']} of {defaults['cases']} cases scored (target >= 5x)")  # fmt: skip
    for concurrency, row in sorted(tuned.items()):
        if concurrency in ours:
            ratio = row["wall_s"] / ours[concurrency]["wall_s"]
            print(f"vs deepeval tuned @ {concurrency}: {ratio:.2f}x its wall time (target >= 1.0)")


if __name__ == "__main__":
    main()
