"""The README's cluster quickstart: its wait returns on a failed Job at once, not at the end of its timeout.

There is no API server here, so `kubectl` is a stand-in on PATH: `wait --for=condition=X job/NAME` returns 0
at once when the Job's fake state is X, else sleeps until killed (as a real wait does until its timeout).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
STAND_IN = """#!/usr/bin/env bash
# kubectl stand-in: only `-n NS wait job/NAME --for=condition=C --timeout=T` and `-n NS logs ...`
for arg in "$@"; do case "$arg" in --for=condition=*) want="${arg#--for=condition=}" ;; esac; done
case "$3" in
  wait) [ "${want,,}" = "${FAKE_JOB_STATE,,}" ] && exit 0; sleep 300; exit 1 ;;
  *) exit 0 ;;
esac
"""


def wait_block() -> str:
    text = README.read_text()
    match = re.search(r"<!-- wait-job:.*?-->\n```bash\n(.*?)```", text, re.S)
    assert match, "README.md: the cluster quickstart's wait-job block is missing"
    return match.group(1)


@pytest.mark.parametrize(
    ("state", "expected"),
    [("Complete", "gate PASSED"), ("Failed", "the eval Job failed"), ("Failed", "gate FAILED")],
)
def test_the_documented_wait_returns_at_once_on_either_verdict(tmp_path: Path, state: str, expected: str) -> None:
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir()
    kubectl.write_text(STAND_IN)
    kubectl.chmod(0o755)
    env = {**os.environ, "PATH": f"{kubectl.parent}:{os.environ['PATH']}", "FAKE_JOB_STATE": state, "RUN_ID": "r1"}
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", wait_block()], env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 15, "the wait did not return when the Job reached its verdict"
    assert expected in done.stdout, done.stdout + done.stderr


def test_the_documented_wait_gives_up_at_its_timeout_when_no_verdict_comes(tmp_path: Path) -> None:
    """A Job that neither completes nor fails: the function returns non-zero (here: a 1 s timeout)."""
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(STAND_IN.replace("sleep 300; exit 1", 'sleep "${FAKE_TIMEOUT:-300}"; exit 1'))
    kubectl.chmod(0o755)
    function = wait_block().split("\nwait_job ", 1)[0]
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "FAKE_JOB_STATE": "Running", "FAKE_TIMEOUT": "1"}
    done = subprocess.run(["bash", "-c", f"{function}\nwait_job x 1s"], env=env, capture_output=True, timeout=30)
    assert done.returncode != 0
