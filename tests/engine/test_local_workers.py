"""`run --workers W`: W long-lived worker processes, each importing once and taking shard after shard from the
parent, write exactly the files the shards would write one by one (as W pods of the Indexed Job would)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cases, read_records, write_suite

pytestmark = pytest.mark.e2e

# Fields that say when or how fast, not what: they differ between any two runs.
VOLATILE = {"duration_s", "started_at", "finished_at", "latency_s", "total_s"}

# Every Python interpreter started with this on its path records its pid and arguments: the test counts the
# worker processes a run really started, not what the parent says it started.
SITECUSTOMIZE = """
import os, sys
with open(os.environ["EVAL_TEST_STARTS"], "a") as handle:
    handle.write(repr((os.getpid(), sys.argv)) + "\\n")
"""


def _normalised(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in VOLATILE}
    out["calls"] = [{k: v for k, v in c.items() if k not in VOLATILE} for c in record["calls"]]
    return out


def _files(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {p.parent.name: [_normalised(r) for r in read_records(p)] for p in sorted(out.glob("shard-*/results.jsonl"))}


def _manifest_facts(out: Path) -> dict[str, tuple[Any, ...]]:
    facts = {}
    for path in sorted(out.glob("shard-*/manifest.json")):
        m = json.loads(path.read_text())
        facts[path.parent.name] = (m["state"], m["shard_index"], m["total_shards"], m["case_ids"], m["counts"])
    return facts


def _counting_starts(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An environment whose every Python process of the run appends a line to the returned file as it starts
    (a sitecustomize hook), so a test counts the processes a command started."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    starts = tmp_path / "starts.txt"
    env = {**os.environ, "EVAL_TEST_STARTS": str(starts),
           "PYTHONPATH": os.pathsep.join(filter(None, (str(hook), os.environ.get("PYTHONPATH"))))}  # fmt: skip
    return starts, env


def test_w_workers_are_w_processes_and_write_what_the_shards_write_one_by_one(tmp_path: Path, stub: str) -> None:
    suite = write_suite(tmp_path / "suite", cases(48), base_url=stub)
    starts, env = _counting_starts(tmp_path)
    parallel, serial = tmp_path / "parallel", tmp_path / "serial"
    done = subprocess.run(
        [sys.executable, "-m", "evaluator", "run", str(suite), "--out", str(parallel), "--workers", "2",
         "--total-shards", "8", "--run-id", "same", "--commit", "c0ffee"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    started = [eval(line) for line in starts.read_text().splitlines()]
    workers = [argv for _, argv in started if "--worker" in argv]
    assert len(workers) == 2, started  # not one per shard: 8 shards, 2 processes
    assert "8 of 8 shards complete" in done.stdout, done.stdout

    for index in range(8):
        one = subprocess.run(
            [sys.executable, "-m", "evaluator", "run", str(suite), "--out", str(serial), "--shard-index", str(index),
             "--total-shards", "8", "--run-id", "same", "--commit", "c0ffee", "-q"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert one.returncode == 0, one.stderr[-3000:]
    assert _files(parallel) == _files(serial)
    assert _manifest_facts(parallel) == _manifest_facts(serial)
    assert len(_files(parallel)) == 8


def test_a_failing_shard_does_not_stop_the_workers_taking_the_others(tmp_path: Path, stub: str) -> None:
    """One worker process runs several shards: a shard that fails (here: its folder holds another run) is that
    shard's exit code; the worker goes on with the next shard, and the run exits with the failed shard's code."""
    suite = write_suite(tmp_path / "suite", cases(24), base_url=stub)
    out = tmp_path / "out"
    first = subprocess.run(
        [sys.executable, "-m", "evaluator", "run", str(suite), "--out", str(out), "--shard-index", "1",
         "--total-shards", "4", "--run-id", "other", "-q"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    done = subprocess.run(
        [sys.executable, "-m", "evaluator", "run", str(suite), "--out", str(out), "--workers", "1",
         "--total-shards", "4", "--run-id", "mine"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr[-3000:]
    assert "failed shards: shard 1: exit 3 (bad shard)" in done.stderr, done.stderr[-3000:]
    assert "3 of 4 shards complete" in done.stdout, done.stdout
    states = {p.parent.name: json.loads(p.read_text())["state"] for p in out.glob("shard-*/manifest.json")}
    assert states == {
        "shard-00000": "complete",
        "shard-00001": "complete",
        "shard-00002": "complete",
        "shard-00003": "complete",
    }  # fmt: skip  (shard 1's is the other run's, untouched)
    assert json.loads((out / "shard-00001" / "manifest.json").read_text())["run_id"] == "other"


def test_every_run_option_reaches_the_workers() -> None:
    """A worker process is given the run's options as `evaluator run` flags: an option added to RunOptions but
    not to its flags would silently differ between `--workers` and a pod."""
    from dataclasses import fields

    from click.testing import CliRunner

    from evaluator.options import RunOptions

    options = RunOptions(
        profile="pr", variant="v1", limit=5, sharding="balanced", total_shards=4, timings=Path("t.json"),
        run_id="r", commit="c", retry_errors=False, steps_dir=Path("steps"), use_cache=False, stop_grace=3.5,
    )  # fmt: skip
    assert {f.name for f in fields(RunOptions)} == {
        "profile",
        "variant",
        "limit",
        "sharding",
        "total_shards",
        "timings",
        "run_id",
        "commit",
        "retry_errors",
        "steps_dir",
        "use_cache",
        "stop_grace",
    }  # fmt: skip  (a new field: add it to worker_arguments and to this test)
    args = options.worker_arguments()
    for flag in ("--profile", "--variant", "--limit", "--sharding", "--total-shards", "--timings", "--run-id",
                 "--commit", "--keep-errors", "--steps-dir", "--no-cache", "--stop-grace"):  # fmt: skip
        assert flag in args, flag
    from evaluator.cli import main

    assert CliRunner().invoke(main, ["run", "--help"]).exit_code == 0
    help_text = CliRunner().invoke(main, ["run", "--help"]).output
    assert all(flag in help_text for flag in args if flag.startswith("--")), help_text


def test_keywords_and_options_make_the_same_run(tmp_path: Path) -> None:
    """`run_shard`'s keywords (the README's API) and a RunOptions object are one thing; keywords win."""
    from evaluator.options import RunOptions, options_from

    base = RunOptions(profile="pr", total_shards=2)
    assert options_from(None, {"profile": "pr", "total_shards": 2}) == base
    assert options_from(base, {"total_shards": 3}).total_shards == 3
    assert options_from(None, {"steps_dir": "x"}).steps_dir == Path("x")


def test_planning_a_run_of_built_in_metrics_does_not_import_deepeval(tmp_path: Path) -> None:
    """The `--workers` parent plans the run and checks every case before it starts the workers: importing DeepEval
    there (seconds of CPU) would delay every worker's start, and it needs DeepEval only for a custom metric."""
    suite = write_suite(tmp_path, cases(3), base_url="http://127.0.0.1:9/v1")
    code = (
        "import sys, evaluator\n"
        f"evaluator.plan_run(evaluator.load_suite({str(suite)!r}))\n"
        "from evaluator.options import RunOptions, prepare_run\n"
        f"prepare_run(evaluator.load_suite({str(suite)!r}), RunOptions(total_shards=2))\n"
        "import evaluator.local_workers, evaluator.commands.run\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'deepeval')[:3])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", done.stdout


def test_workers_started_before_planning_end_quietly_when_the_plan_fails(tmp_path: Path) -> None:
    """The workers start (and import DeepEval) while the parent plans; a case the parent refuses is said once, by
    the parent, with exit 2: the workers it started end without a word of their own and leave no process behind."""
    bad = [*cases(3), {"id": "c9999", "expected_output": "ok"}]  # no input: refused when the run is planned
    suite = write_suite(tmp_path / "suite", bad)
    starts, env = _counting_starts(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "evaluator", "run", str(suite), "--out", str(tmp_path / "out"), "--workers", "2",
         "--total-shards", "4", "--commit", "c0ffee"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    workers = [pid for pid, argv in (eval(line) for line in starts.read_text().splitlines()) if "--worker" in argv]
    assert len(workers) == 2  # started early, as they are for a good run
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not list((tmp_path / "out").glob("shard-*"))
