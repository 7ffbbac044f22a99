"""`run --workers W`: every shard of a run on this machine, W worker processes at a time, like the Job controller
with completions = shards and parallelism = W; each worker is given `JOB_COMPLETION_INDEX` and
`EVAL_TOTAL_SHARDS` exactly as a pod is.

The parent follows its workers through the messages they print on their stdout (`progress.worker_message`:
progress, then the shard's outcome), so it can draw one progress bar across all of them and say what the run
did: the units done, each shard's outcome, and the run's exit code, which is the workers' (0 when every shard
finished; quality failures are results, the gate is `evaluator gate`'s job). A SIGINT or SIGTERM is forwarded
to every running worker (each in its own process group, so a terminal's Ctrl-C reaches them once, through the
parent); no further shard starts; the parent waits for the workers' clean stop, then prints the one resume
line and exits 128 + the signal.

Nothing here depends on one process per shard: `ShardStatus` and the message protocol would serve long-lived
workers that take shard after shard just as well.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evaluator.errors import EXIT_BAD_SHARD, EXIT_INFRASTRUCTURE, EXIT_INPUT_ERROR
from evaluator.progress import read_worker_message
from evaluator.results import MANIFEST_FILE, RESULTS_FILE, read_manifest, read_results, shard_dir
from evaluator.stopping import Stop

log = logging.getLogger("evaluator.run")

EXIT_MEANING = {EXIT_INPUT_ERROR: "bad suite, dataset or flag", EXIT_BAD_SHARD: "bad shard",
                EXIT_INFRASTRUCTURE: "infrastructure"}  # fmt: skip
KILL_AFTER_S = 15.0  # beyond a worker's own grace: a worker that does not stop by then is killed


@dataclass
class ShardStatus:
    """What the parent knows of one shard: started or not, its units done of its total, how it ended."""

    index: int
    started: bool = False
    done: int = 0
    total: int = 0
    state: str | None = None  # complete or cancelled, from the worker's outcome message
    passed: int = 0
    failed: int = 0
    errored: int = 0
    code: int | None = None

    def apply(self, message: dict[str, object]) -> None:
        for name in ("done", "total", "passed", "failed", "errored"):
            value = message.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, value)
        state = message.get("state")
        if isinstance(state, str):
            self.state = state


@dataclass
class WorkersResult:
    shards: dict[int, ShardStatus]
    stop: Stop
    wall_s: float
    failed: dict[int, int] = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return self.stop.requested and any(s.state != "complete" for s in self.shards.values())

    @property
    def exit_code(self) -> int:
        """0 every shard finished; a stop's 128 + signal; else the worst worker code (2, then 3, else 4)."""
        if self.cancelled:
            return self.stop.exit_code
        if not self.failed:
            return 0
        for code in (EXIT_INPUT_ERROR, EXIT_BAD_SHARD):
            if code in self.failed.values():
                return code
        return EXIT_INFRASTRUCTURE


class LocalWorkers:
    """Runs `command` once per shard index, `workers` at a time, until every shard ended or a stop came."""

    def __init__(
        self, command: list[str], total: int, workers: int, stop: Stop,
        on_update: Callable[[dict[int, ShardStatus]], None] | None = None,
    ) -> None:  # fmt: skip
        self.command, self.total, self.workers, self.stop = command, total, workers, stop
        self.on_update = on_update
        self.shards = {index: ShardStatus(index) for index in range(total)}
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []

    def run(self) -> WorkersResult:
        started = time.monotonic()
        pending = list(range(self.total))
        running: dict[int, subprocess.Popen[str]] = {}
        forwarded = hurried = False
        stop_seen_at: float | None = None
        while pending or running:
            if self.stop.requested:
                if stop_seen_at is None:
                    stop_seen_at = time.monotonic()
                if not forwarded or (self.stop.hurry and not hurried):
                    self._forward(running)
                    forwarded, hurried = True, self.stop.hurry
                pending.clear()
                if time.monotonic() - stop_seen_at > self.stop.grace_s + KILL_AFTER_S:
                    for index, process in running.items():
                        log.warning("shard %d did not stop within its grace: killing it", index)
                        process.kill()
            while pending and len(running) < self.workers:
                index = pending.pop(0)
                running[index] = self._start(index)
            for index, process in list(running.items()):
                code = process.poll()
                if code is not None:
                    del running[index]
                    with self._lock:
                        self.shards[index].code = code
            self._notify()
            time.sleep(0.05)
        for reader in self._readers:
            reader.join(5)
        self._notify()
        failed = {
            i: s.code for i, s in self.shards.items()
            if s.code is not None and s.code != 0 and not (self.stop.requested and s.code == self.stop.exit_code)
        }  # fmt: skip
        return WorkersResult(dict(self.shards), self.stop, time.monotonic() - started, failed)

    def _start(self, index: int) -> subprocess.Popen[str]:
        env = {**os.environ, "JOB_COMPLETION_INDEX": str(index), "EVAL_TOTAL_SHARDS": str(self.total)}
        # Its own process group: a terminal's Ctrl-C reaches the parent only, which forwards it once.
        process = subprocess.Popen(self.command, env=env, stdout=subprocess.PIPE, text=True, process_group=0)
        with self._lock:
            self.shards[index].started = True
        reader = threading.Thread(target=self._read, args=(index, process), name=f"shard-{index}-out", daemon=True)
        reader.start()
        self._readers.append(reader)
        return process

    def _read(self, index: int, process: subprocess.Popen[str]) -> None:
        """A worker's stdout: its messages update the shard's status; any other line is passed through."""
        assert process.stdout is not None
        for line in process.stdout:
            message = read_worker_message(line.rstrip("\n"))
            if message is None:
                sys.stdout.write(line)
                sys.stdout.flush()
                continue
            with self._lock:
                self.shards[index].apply(message)

    def _forward(self, running: dict[int, subprocess.Popen[str]]) -> None:
        signum = self.stop.signum or signal.SIGTERM
        for process in running.values():
            if process.poll() is None:
                process.send_signal(signum)

    def _notify(self) -> None:
        if self.on_update is not None:
            with self._lock:
                snapshot = {i: ShardStatus(**vars(s)) for i, s in self.shards.items()}
            self.on_update(snapshot)


def units_on_disk(out: Path, index: int, run_id: str) -> int:
    """Units with a result of run `run_id` in a shard's folder (for a shard that did not start this time)."""
    path = shard_dir(out, index) / RESULTS_FILE
    content = read_results(path)
    return len({(r.variant, r.case_id) for r in content.records if r.run_id == run_id})


def fill_from_manifests(shards: dict[int, ShardStatus], out: Path, run_id: str) -> None:
    """A worker that wrote its manifest but exited before its outcome message (the error budget exceeded, exit 4)
    is known from the manifest: its counts, and whether it completed."""
    for status in shards.values():
        if not status.started or status.state is not None:
            continue
        manifest = read_manifest(shard_dir(out, status.index) / MANIFEST_FILE).manifest
        if manifest is None or manifest.run_id != run_id:
            continue
        counts = manifest.counts
        status.apply({"state": manifest.state, "total": counts.cases, "passed": counts.passed,
                      "failed": counts.failed, "errored": counts.errored,
                      "done": counts.passed + counts.failed + counts.errored})  # fmt: skip
