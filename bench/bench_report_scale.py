"""Aggregate and report at scale (issue 22): whole-command wall time and peak memory, report sizes, and how long
the HTML report takes to open in headless Chromium with its plots drawn.

No inference server is involved: the shard folders are written directly (the same `results.jsonl` lines and
`manifest.json` the runner writes, built from the contract's models), so each row measures only what it names.

    .venv/bin/python bench/bench_report_scale.py                        # 100,000 cases
    .venv/bin/python bench/bench_report_scale.py --cases 1000000 --skip-report
    PYTHONPATH=/tmp/stream-base .venv/bin/python bench/bench_report_scale.py   # another tree's evaluator

Imports are timed as an installed package pays them: pip byte-compiles what it installs, so the children run
with Python's bytecode cache on (PYTHONDONTWRITEBYTECODE removed) after an unmeasured warm-up on 200 cases has
written it; without it the report command compiled some 1,600 modules (~1.2 s CPU) on every run.
`--cold-imports` keeps the environment's setting (and skips the warm-up) to measure that case.

Each row runs `python -m evaluator ...` as its own process and reads its peak RSS from
`resource.getrusage(RUSAGE_CHILDREN)` (the high-water mark of the children waited for so far, so each command
runs in a fresh helper process and reports its own). `open` is Chromium's wall time from start to a dumped DOM
with every `plot-*` element drawn (an `svg.main-svg` inside it) and the case table's first rows rendered.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
]  # fmt: skip
METRICS = ("answer_relevancy", "correctness")


def write_shards(out: Path, cases: int, shards: int, seed: int = 7) -> None:
    """`cases` units over `shards` folders (round robin): short texts, two metrics, one target call, ~600 bytes a
    record (the size of issue 22's 100k run, whose report.json was 57 MB)."""
    rng = random.Random(seed)
    per_shard: list[list[str]] = [[] for _ in range(shards)]
    for index in range(cases):
        per_shard[index % shards].append(f"case-{index:07d}")
    for shard, ids in enumerate(per_shard):
        folder = out / f"shard-{shard:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        passed = 0
        with (folder / "results.jsonl").open("wb") as handle:
            for case_id in ids:
                index = int(case_id.split("-")[1])
                scores = {name: round(rng.random() ** 0.3, 4) for name in METRICS}
                success = all(score >= 0.5 for score in scores.values())
                passed += success
                record = {
                    "schema": "evaluator.result/v3", "run_id": "bench-run", "suite_hash": "0" * 64,
                    "commit": "bench", "shard_index": shard, "total_shards": shards, "variant": "default",
                    "case_id": case_id, "case_index": index,
                    "input": f"What is the answer to question {index}?",
                    "expected_output": f"The answer to {index} is {index * 7 % 101}.",
                    "actual_output": f"It is {index * 7 % 101}.",
                    "metrics": {
                        name: {"score": score, "threshold": 0.5, "success": score >= 0.5,
                               "reason": None if score >= 0.5 else "Misses the point."}
                        for name, score in scores.items()
                    },
                    "calls": [
                        {"type": "target", "latency_s": round(rng.uniform(0.1, 0.4), 4), "total_s": 0.3,
                         "attempts": 1, "prompt_tokens": 40, "completion_tokens": 30, "status": 200},
                    ],
                    "success": success, "duration_s": round(rng.uniform(0.2, 1.2), 4),
                    "started_at": "2026-12-03T10:00:00+00:00", "finished_at": "2026-12-03T10:00:01+00:00",
                    "scored_with": {name: "fp" for name in METRICS},
                }  # fmt: skip
                line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
                digest.update(line)
                handle.write(line)
        manifest = {
            "schema": "evaluator.manifest/v4", "run_id": "bench-run", "suite_hash": "0" * 64, "suite_name": "bench",
            "commit": "bench", "shard_index": shard, "total_shards": shards, "sharding": "round_robin",
            "gate": {}, "suite_path": "bench.yaml", "max_calls_per_endpoint": 64, "case_ids": ids,
            "counts": {"cases": len(ids), "passed": passed, "failed": len(ids) - passed, "errored": 0},
            "results_sha256": digest.hexdigest(), "started_at": "2026-12-03T10:00:00+00:00",
            "finished_at": "2026-12-03T10:20:00+00:00", "wall_time_s": 1200.0, "state": "complete",
            "scoring": {name: "fp" for name in METRICS},
        }  # fmt: skip
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float, float, subprocess.CompletedProcess[str]]:
    """(wall seconds, peak RSS in MB, CPU seconds (user + system: what the command costs, whatever else runs on
    the machine), the process) of one command run in a fresh helper process (outside any source
    tree, so PYTHONPATH decides which evaluator runs)."""
    probe = (
        "import json, resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - start\n"
        "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime\n"
        "print(json.dumps({'wall': wall, 'peak': peak, 'cpu': cpu, 'rc': done.returncode, 'out': done.stdout[-2000:],"
        " 'err': done.stderr[-4000:]}))\n"
    )
    outside = tempfile.gettempdir()
    done = subprocess.run(
        [sys.executable, "-c", probe, *command], capture_output=True, text=True, env=env, check=True, cwd=outside
    )
    data = json.loads(done.stdout)
    result = subprocess.CompletedProcess(command, data["rc"], data["out"], data["err"])
    return data["wall"], data["peak"], data["cpu"], result


def chromium_open(page: Path, budget_ms: int, timeout_s: float = 600) -> tuple[float, bool, str]:
    """(wall seconds, every plot drawn and case rows present, detail) of headless Chromium opening the page."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return float("nan"), False, "chromium not installed"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                 "--dump-dom", page.resolve().as_uri()],
                capture_output=True, timeout=timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return time.perf_counter() - start, False, f"not opened within {timeout_s:g} s (killed)"
        wall = time.perf_counter() - start
    dom = done.stdout.decode("utf-8", errors="replace")
    plots = re.findall(r'id="(plot-[^"]+)"', dom)
    drawn = dom.count('class="main-svg"')
    rows = len(re.findall(r"<tr[ >]", dom))
    ok = bool(plots) and drawn >= len(set(plots)) and rows > 1
    return wall, ok, f"{len(set(plots))} plots, {drawn} svg layers, {rows} table rows in the DOM"


def warm_up(folder: Path, evaluator: list[str], env: dict[str, str]) -> None:
    """Aggregate and report 200 cases, unmeasured: the modules both commands import are byte-compiled once."""
    if not (folder / "shards").exists():
        write_shards(folder / "shards", 200, 2)
    out = folder / "out"
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.json"
    outside = tempfile.gettempdir()
    for command in (
        [*evaluator, "aggregate", str(folder / "shards"), "--out", str(report), "-q"],
        [*evaluator, "report", str(report), "--junit", str(out / "junit.xml"), "--markdown", str(out / "summary.md"),
         "--html", str(out / "html" / "report.html"), "-q"],
    ):  # fmt: skip
        subprocess.run(command, env=env, capture_output=True, check=False, cwd=outside)


def size_mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB" if path.exists() else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the shards and reports here")
    parser.add_argument("--skip-report", action="store_true", help="only aggregate")
    parser.add_argument("--budget-ms", type=int, default=5000, help="Chromium's virtual-time budget")
    parser.add_argument("--label", default="", help="printed on each row (e.g. before/after)")
    parser.add_argument(
        "--cold-imports", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as set and skip the warm-up"
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-report-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEEPEVAL_TELEMETRY_OPT_OUT": "1", "DEEPEVAL_DISABLE_DOTENV": "1", "NO_COLOR": "1"}
    if not args.cold_imports:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    evaluator = [sys.executable, "-m", "evaluator"]
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()}, {args.cases} cases in {args.shards} shards; in {work}")
    where = [sys.executable, "-c", "import evaluator; print(evaluator.__file__)"]
    outside = tempfile.gettempdir()
    which = subprocess.run(where, env=env, capture_output=True, text=True, check=True, cwd=outside).stdout.strip()
    print(f"evaluator from {which}")
    bytecode = "off (--cold-imports)" if env.get("PYTHONDONTWRITEBYTECODE") else "on"
    print(f"bytecode cache: {bytecode}")
    if not args.cold_imports:
        warm_up(work / "warm-up", evaluator, env)
    shards = work / "shards"
    if not shards.exists():
        start = time.perf_counter()
        write_shards(shards, args.cases, args.shards)
        print(f"wrote the shards in {time.perf_counter() - start:.1f} s")
    rows: list[tuple[str, str, str, str, str]] = []
    report = work / "out" / "report.json"
    report.parent.mkdir(exist_ok=True)
    wall, peak, cpu, done = measured([*evaluator, "aggregate", str(shards), "--out", str(report), "-q"], env)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"aggregate exited {done.returncode}")
    sidecars = sorted(p for p in report.parent.glob(f"{report.stem}.*") if p != report)  # its cases file
    sizes = ", ".join(f"{p.name} {size_mb(p)}" for p in [report, *sidecars])
    rows.append(("aggregate", f"{wall:.2f}", f"{cpu:.2f}", f"{peak:.0f}", sizes))
    if not args.skip_report:
        html = work / "out" / "html" / "report.html"
        junit, markdown = work / "out" / "junit.xml", work / "out" / "summary.md"
        command = [*evaluator, "report", str(report), "--junit", str(junit), "--markdown", str(markdown),
                   "--html", str(html)]  # fmt: skip
        wall, peak, cpu, done = measured(command, env)
        if done.returncode not in (0, 1):
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"report exited {done.returncode}")
        rows_js = html.with_name(f"{html.stem}.cases.js")
        sizes = f"junit {size_mb(junit)}, markdown {size_mb(markdown)}, html {size_mb(html)}"
        sizes += f" + rows {size_mb(rows_js)}" if rows_js.exists() else " (rows inline)"
        rows.append(("report (JUnit + Markdown + HTML)", f"{wall:.2f}", f"{cpu:.2f}", f"{peak:.0f}", sizes))
        opened, ok, detail = chromium_open(html, args.budget_ms)
        note = f"{'drawn' if ok else 'NOT DRAWN'}: {detail}"
        rows.append(("HTML open in headless Chromium", f"{opened:.2f}", "-", "-", note))
    label = f" {args.label}" if args.label else ""
    print(f"\n| row{label} | wall s | CPU s | peak RSS MB | sizes / note |\n|---|---|---|---|---|")
    for name, seconds, cpu_s, megabytes, note in rows:
        print(f"| {name} | {seconds} | {cpu_s} | {megabytes} | {note} |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
