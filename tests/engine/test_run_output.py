"""What `evaluator run --workers` prints and exits with: the run's outcome and code (the gate is `gate`'s job),
workers that honour -q, and progress with an ETA across all workers (a live bar on a terminal, a periodic line
in logs)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cases, write_suite

pytestmark = pytest.mark.e2e

OUTCOME = re.compile(r"^run (\S+): (\d+) of (\d+) units done", re.MULTILINE)


def _quality_failures(tmp_path: Path, base_url: str, count: int = 8) -> Path:
    data = [{"id": f"q{i}", "input": f"Answer with exactly: {'4' if i % 2 else '5'}", "expected_output": "4"}
            for i in range(count)]  # fmt: skip
    return write_suite(tmp_path, data, base_url=base_url, metrics=[{"type": "exact_match"}], judge=None)


def test_workers_print_the_outcome_not_a_verdict_and_honour_quiet(
    tmp_path: Path, stub: str, evaluator_cli: Any
) -> None:
    suite = _quality_failures(tmp_path, stub)
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"), "--workers", "2", "--run-id", "r1", "-q")
    assert done.returncode == 0, done.stderr  # quality failures are results, not a failed run
    text = done.stdout + done.stderr
    assert "PASS" not in text and "FAIL" not in text, text  # the gate is `evaluator gate`'s job
    assert "Latency per call type" not in text and "pass rate" not in text, text  # not aggregate's summary
    found = OUTCOME.findall(text)
    assert found == [("r1", "8", "8")], text
    assert "4 passed, 4 failed, 0 errored" in text
    assert " INFO " not in done.stderr, done.stderr  # -q reaches the workers


def test_workers_exit_with_the_shards_code_and_never_vouch_for_old_results(
    tmp_path: Path, stub: str, evaluator_cli: Any
) -> None:
    suite, out = _quality_failures(tmp_path, stub), tmp_path / "out"
    assert evaluator_cli("run", str(suite), "--out", str(out), "--workers", "2", "--run-id", "first").returncode == 0
    other = evaluator_cli("run", str(suite), "--out", str(out), "--workers", "2", "--run-id", "second")
    assert other.returncode == 3, other.stderr
    text = other.stdout + other.stderr
    assert "PASS" not in text and "FAIL" not in text, text
    assert "use a fresh --out folder" in text
    assert OUTCOME.findall(text) == [("second", "0", "8")], text


def test_workers_log_progress_with_an_eta_when_not_a_terminal(tmp_path: Path, stub: str, evaluator_cli: Any) -> None:
    suite = write_suite(tmp_path, cases(40), base_url=stub)
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"), "--workers", "2", "--total-shards", "4")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "evaluator.progress" in line]
    assert lines, done.stderr
    assert re.search(r"run \S+: \d+/40 units \(\d+%\), [\d.]+ units/s, ETA \S+", lines[0]), lines
    assert re.search(r"40/40 units \(100%\)", lines[-1]), lines


def test_workers_draw_a_live_progress_bar_on_a_terminal(tmp_path: Path, stub: str) -> None:
    suite = write_suite(tmp_path, cases(30), base_url=stub)
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "evaluator", "run", str(suite), "--out", str(tmp_path / "out"), "--workers", "2"],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait(120) == 0
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))  # no colours
    assert "━" in screen and re.search(r"\d+/30 units", screen), screen[-2000:]
    assert "ETA" in screen, screen[-2000:]
    assert "evaluator.run: shard" not in screen  # the bar stands for the workers' log lines on a terminal
