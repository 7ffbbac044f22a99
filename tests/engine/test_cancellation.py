"""Cancellation is an outcome: real SIGINT and SIGTERM sent to real `evaluator run` processes mid-run.

In each mode (one shard, a pod's shard from JOB_COMPLETION_INDEX, `--workers`): the process stops starting units,
lets the ones in flight finish within the grace, writes the shard's manifest as `cancelled`, prints one line
("N of M done; re-run the same command to resume"), exits 130 (SIGINT) or 143 (SIGTERM) without a traceback;
`aggregate` calls the shard incomplete, and the same command resumes to every unit exactly once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openai_stub.server import set_controls, stub_process
from tests.helpers import cases, read_records, write_suite

pytestmark = pytest.mark.e2e

RESUME_LINE = re.compile(r"^(\d+) of (\d+) done; re-run the same command to resume$")


@pytest.fixture
def slow_stub() -> Iterator[str]:
    """A server slow enough (0.15 s a call, 4 calls a case, 4 calls in flight) that a run is mid-flight for seconds."""
    with stub_process(latency=0.15) as base_url:
        yield base_url


def _suite(tmp_path: Path, base_url: str, count: int = 60) -> Path:
    return write_suite(tmp_path, cases(count), base_url=base_url, concurrency={"max_calls_per_endpoint": 4})


def _start(args: list[str], env: dict[str, str] | None = None, new_session: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "evaluator", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=new_session,
    )


def _records(out: Path) -> list[dict]:
    return [r for path in sorted(out.glob("shard-*/results.jsonl")) for r in read_records(path)]


def _wait_for_records(out: Path, at_least: int, process: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be interrupted"
        found = sum(
            p.read_bytes().count(b"\n") for p in out.glob("shard-*/results.jsonl") if p.exists()
        )  # fmt: skip
        if found >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} records after {timeout}s")


def _stopped(process: subprocess.Popen[str], signum: int, *, group: bool = False) -> tuple[str, str]:
    if group:
        os.killpg(process.pid, signum)  # what a terminal's Ctrl-C does: the whole foreground process group
    else:
        process.send_signal(signum)  # what the kubelet (SIGTERM) or `kill -INT` does: the process alone
    stdout, stderr = process.communicate(timeout=90)
    return stdout, stderr


def _assert_cancelled_cleanly(signum: int, code: int, stdout: str, stderr: str, out: Path) -> tuple[int, int]:
    assert code == 128 + signum, (code, stderr[-3000:])
    assert "Traceback" not in stderr + stdout, stderr[-3000:]
    lines = [line for line in (stdout + stderr).splitlines() if "re-run the same command to resume" in line]
    assert len(lines) == 1, lines
    match = RESUME_LINE.match(lines[0].strip())
    assert match is not None, lines[0]
    done, total = int(match.group(1)), int(match.group(2))
    assert 0 < done < total
    assert done == len({(r["variant"], r["case_id"]) for r in _records(out)})
    return done, total


def _assert_resumes_exactly_once(args: list[str], out: Path, count: int, env: dict[str, str] | None = None) -> None:
    again = subprocess.run(
        [sys.executable, "-m", "evaluator", "run", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    ids = sorted(r["case_id"] for r in _records(out))
    assert ids == [f"c{i:04d}" for i in range(count)], "every case exactly once"


def _aggregate(out: Path, tmp_path: Path, *args: str) -> dict:
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "evaluator", "aggregate", str(out), "--out", str(report), "-q", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    content: dict = json.loads(report.read_text())
    return content


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_single_shard_stops_cleanly_and_resumes(tmp_path: Path, slow_stub: str, signum: int) -> None:
    suite, out = _suite(tmp_path, slow_stub), tmp_path / "out"
    args = [str(suite), "--out", str(out), "--run-id", "stop"]
    process = _start(args)
    _wait_for_records(out, 6, process)
    stdout, stderr = _stopped(process, signum)
    done, total = _assert_cancelled_cleanly(signum, process.returncode, stdout, stderr, out)
    assert total == 60
    manifest = json.loads((out / "shard-00000" / "manifest.json").read_text())
    assert manifest["state"] == "cancelled"
    assert manifest["counts"]["cases"] == 60
    assert manifest["counts"]["passed"] + manifest["counts"]["failed"] + manifest["counts"]["errored"] == done
    report = _aggregate(out, tmp_path)
    assert report["shards"]["incomplete"] == [0] and report["shards"]["complete"] == []
    assert any(p["kind"] == "incomplete_shard" and "cancelled" in p["message"] for p in report["problems"])
    _assert_resumes_exactly_once(args, out, 60)
    report = _aggregate(out, tmp_path)
    assert report["problems"] == [] and report["totals"]["cases"] == 60


def test_a_pods_shard_stops_on_sigterm_as_the_kubelet_sends_it(tmp_path: Path, slow_stub: str) -> None:
    """Pod mode: the shard comes from JOB_COMPLETION_INDEX, no flags; eviction or `kubectl delete` sends SIGTERM."""
    suite, out = _suite(tmp_path, slow_stub), tmp_path / "out"
    env = {"JOB_COMPLETION_INDEX": "1", "EVAL_TOTAL_SHARDS": "2", "EVAL_RUN_ID": "pod", "EVAL_OUT_DIR": str(out)}
    process = _start([str(suite)], env=env)
    _wait_for_records(out, 4, process)
    stdout, stderr = _stopped(process, signal.SIGTERM)
    done, total = _assert_cancelled_cleanly(signal.SIGTERM, process.returncode, stdout, stderr, out)
    assert total == 30  # shard 1 of 2: its own units
    assert json.loads((out / "shard-00001" / "manifest.json").read_text())["state"] == "cancelled"
    again = subprocess.run(
        [sys.executable, "-m", "evaluator", "run", str(suite)], capture_output=True, text=True,
        env={**os.environ, **env}, timeout=300, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    ids = sorted(r["case_id"] for r in _records(out))
    assert ids == [f"c{i:04d}" for i in range(30, 60)]


@pytest.mark.parametrize(
    ("signum", "group"), [(signal.SIGINT, True), (signal.SIGTERM, False)], ids=["SIGINT-ctrl-c", "SIGTERM"]
)
def test_local_workers_stop_cleanly_and_resume(tmp_path: Path, slow_stub: str, signum: int, group: bool) -> None:
    suite, out = _suite(tmp_path, slow_stub, count=80), tmp_path / "out"
    args = [str(suite), "--out", str(out), "--workers", "2", "--total-shards", "3", "--run-id", "workers"]
    process = _start(args, new_session=True)
    _wait_for_records(out, 8, process)
    stdout, stderr = _stopped(process, signum, group=group)
    done, total = _assert_cancelled_cleanly(signum, process.returncode, stdout, stderr, out)
    assert total == 80
    assert "failed shards" not in stderr
    states = {p.parent.name: json.loads(p.read_text())["state"] for p in out.glob("shard-*/manifest.json")}
    assert states and set(states.values()) == {"cancelled"}, states  # shard 2 never started: no folder
    _assert_resumes_exactly_once(args, out, 80)
    report = _aggregate(out, tmp_path, "--expect-shards", "3")
    assert report["problems"] == [] and report["totals"]["cases"] == 80


def test_the_grace_bounds_how_long_in_flight_calls_may_take(tmp_path: Path, slow_stub: str) -> None:
    """A server that stops answering cannot hold a stopping shard past its grace: in-flight units are abandoned
    (they run again on resume), the manifest still says `cancelled`."""
    suite, out = _suite(tmp_path, slow_stub), tmp_path / "out"
    args = [str(suite), "--out", str(out), "--run-id", "hang", "--stop-grace", "1"]
    process = _start(args)
    _wait_for_records(out, 4, process)
    set_controls(slow_stub, rate_hang=1.0, hang_seconds=600)
    time.sleep(0.5)  # every call now hangs
    started = time.monotonic()
    stdout, stderr = _stopped(process, signal.SIGTERM)
    elapsed = time.monotonic() - started
    _assert_cancelled_cleanly(signal.SIGTERM, process.returncode, stdout, stderr, out)
    assert elapsed < 20, f"took {elapsed:.1f}s to stop with a 1 s grace (the calls hang for 600 s)"
    assert json.loads((out / "shard-00000" / "manifest.json").read_text())["state"] == "cancelled"
    set_controls(slow_stub, rate_hang=0.0, latency=0.0)
    _assert_resumes_exactly_once(args, out, 60)
