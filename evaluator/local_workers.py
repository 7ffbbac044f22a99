"""`run --workers W`: every shard of a run on this machine, like the Job controller with completions = shards and
parallelism = W, but with W long-lived worker processes: each imports DeepEval and plans the run once, then takes
shard after shard from the parent (`serve_shards`), so 8 shards on 2 workers cost 2 start-ups, not 8. A worker
takes its next shard as soon as no unit of the current one is left to start, and runs both in its one event loop
under one concurrency limit per server, so no shard's tail leaves the server idle. Each shard writes exactly the
files a pod of the Indexed Job writes for that index (its manifest's endpoint figures: the calls it made, the
limit's changes while it ran, the most calls the worker had in flight then).

The protocol is one line per message. The parent's first line to a worker is what it planned and a worker's flags
cannot say before it did (run id, shard count, sharding mode: `run_settings_line`), so the workers start, and import
DeepEval, while the parent still plans (`start_worker`, then `LocalWorkers(warm=...)`). A worker prints `ready`
(`progress.worker_message`) on its stdout when it can take a shard; the parent answers with the shard's index on
its stdin, or closes it when no shard is left. While a shard runs the worker prints its progress, then its outcome
(state, counts, and the exit code a process running that shard alone would have had), so the parent draws one
progress bar across all workers and says what the run did. A shard that fails (a bad shard folder, the error
budget exceeded) is that shard's code; the worker goes on with the next. The run's exit code is 0 when every
shard finished (quality failures are results, the gate is `evaluator gate`'s job), else the worst shard code (2,
then 3, else 4).

A SIGINT or SIGTERM is forwarded to every worker (each in its own process group, so a terminal's Ctrl-C reaches
them once, through the parent); no further shard is handed out; each worker stops its shard cleanly (the grace,
a `cancelled` manifest) and exits 128 + the signal; the parent waits, prints the one resume line and exits with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from evaluator.errors import EXIT_BAD_SHARD, EXIT_INFRASTRUCTURE, EXIT_INPUT_ERROR, EvaluatorError
from evaluator.options import PreparedRun
from evaluator.progress import read_worker_message, worker_message
from evaluator.stopping import Cancelled, Stop

if TYPE_CHECKING:
    from evaluator.engine.limiter import AdaptiveLimiter

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


@dataclass
class _Worker:
    """One worker process as the parent sees it: the shard it runs (None: idle or starting), whether it asked
    for a shard, and whether it took any (a worker that dies before taking one is not replaced forever)."""

    process: subprocess.Popen[str]
    shard: int | None = None
    took_any: bool = False
    closed: bool = False
    reader: threading.Thread | None = None


class LocalWorkers:
    """Runs every shard index of `total` on at most `workers` processes of `command` (each takes shard after
    shard on its stdin, see the module's protocol), until every shard ended or a stop came."""

    def __init__(
        self, command: list[str], total: int, workers: int, stop: Stop,
        on_update: Callable[[dict[int, ShardStatus]], None] | None = None, *, settings: str,
        warm: list[subprocess.Popen[str]] | None = None,
    ) -> None:  # fmt: skip
        """`settings` is each worker's first line (`run_settings_line`); `warm` are workers of `command` started
        already (`start_worker`), used before any new one is started."""
        self.command, self.total, self.workers, self.stop = command, total, workers, stop
        self.on_update = on_update
        self.settings = settings
        self.warm = list(warm or [])
        self.shards = {index: ShardStatus(index) for index in range(total)}
        self.started_processes = 0
        self._lock = threading.Lock()
        self._pending: deque[int] = deque(range(total))
        self._live: list[_Worker] = []

    def run(self) -> WorkersResult:
        started = time.monotonic()
        forwarded = hurried = False
        stop_seen_at: float | None = None
        failed_starts = 0
        while True:
            if self.stop.requested:
                if stop_seen_at is None:
                    stop_seen_at = time.monotonic()
                    with self._lock:
                        self._pending.clear()
                        for worker in self._live:
                            self._close(worker)
                if not forwarded or (self.stop.hurry and not hurried):
                    self._forward()
                    forwarded, hurried = True, self.stop.hurry
                if time.monotonic() - stop_seen_at > self.stop.grace_s + KILL_AFTER_S:
                    for worker in self._live:
                        log.warning("a worker (shard %s) did not stop within its grace: killing it", worker.shard)
                        worker.process.kill()
            failed_starts += self._reap()
            with self._lock:
                idle = sum(1 for w in self._live if w.shard is None)
                if failed_starts >= self.workers and self._pending:  # workers die before taking any shard
                    for index in self._pending:
                        self.shards[index].code = EXIT_INFRASTRUCTURE
                    self._pending.clear()
                while self._pending and len(self._live) < self.workers and idle < len(self._pending):
                    self._start()
                    idle += 1
                if not self._live and not self._pending:
                    break
            self._notify()
            time.sleep(0.02)
        self._notify()
        release_workers(self.warm)
        self.warm = []
        failed = {
            i: s.code for i, s in self.shards.items()
            if s.code is not None and s.code != 0 and not (self.stop.requested and s.code == self.stop.exit_code)
        }  # fmt: skip
        return WorkersResult(dict(self.shards), self.stop, time.monotonic() - started, failed)

    def _start(self) -> None:
        """A worker (caller holds the lock): a warm one, else a new process; either is sent the run's settings."""
        process = self.warm.pop(0) if self.warm else start_worker(self.command)
        assert process.stdin is not None
        with contextlib.suppress(OSError):  # it died meanwhile: _reap finds it
            process.stdin.write(self.settings + "\n")
            process.stdin.flush()
        worker = _Worker(process)
        worker.reader = threading.Thread(target=self._read, args=(worker,), name="worker-out", daemon=True)
        self._live.append(worker)
        self.started_processes += 1
        worker.reader.start()

    def _reap(self) -> int:
        """Forgets workers that exited; a shard a worker died in is that shard's code. Returns how many died
        without taking any shard."""
        died_idle = 0
        for worker in list(self._live):
            code = worker.process.poll()
            if code is None:
                continue
            if worker.reader is not None:
                worker.reader.join(5)
            with self._lock:
                self._live.remove(worker)
                if worker.shard is not None and self.shards[worker.shard].code is None:
                    self.shards[worker.shard].code = code if code else EXIT_INFRASTRUCTURE
                if not worker.took_any and code != 0 and not self.stop.requested:
                    died_idle += 1
        return died_idle

    def _read(self, worker: _Worker) -> None:
        """A worker's stdout: `ready` hands it the next shard, progress and outcomes update the shards' status;
        any other line is passed through."""
        assert worker.process.stdout is not None
        for line in worker.process.stdout:
            message = read_worker_message(line.rstrip("\n"))
            if message is None:
                sys.stdout.write(line)
                sys.stdout.flush()
                continue
            kind, index = message.get("kind"), message.get("shard")
            with self._lock:
                if kind == "ready":
                    self._offer(worker)
                elif isinstance(index, int) and index in self.shards:
                    self.shards[index].apply(message)
                    code = message.get("code")
                    if kind == "outcome" and isinstance(code, int):
                        self.shards[index].code = code
                        worker.shard = None

    def _offer(self, worker: _Worker) -> None:
        """The next shard to a worker that asked (caller holds the lock), or the end of its work."""
        if worker.closed:
            return
        if not self._pending or self.stop.requested:
            self._close(worker)
            return
        index = self._pending.popleft()
        worker.shard, worker.took_any = index, True
        self.shards[index].started = True
        assert worker.process.stdin is not None
        try:
            worker.process.stdin.write(f"{index}\n")
            worker.process.stdin.flush()
        except OSError:  # it died meanwhile: the shard is its exit code (see _reap)
            pass

    def _close(self, worker: _Worker) -> None:
        if not worker.closed and worker.process.stdin is not None:
            worker.closed = True
            with contextlib.suppress(OSError):
                worker.process.stdin.close()

    def _forward(self) -> None:
        signum = self.stop.signum or signal.SIGTERM
        with self._lock:
            live = list(self._live)
        for worker in live:
            if worker.process.poll() is None:
                worker.process.send_signal(signum)

    def _notify(self) -> None:
        if self.on_update is not None:
            with self._lock:
                snapshot = {i: ShardStatus(**vars(s)) for i, s in self.shards.items()}
            self.on_update(snapshot)


def start_worker(command: list[str]) -> subprocess.Popen[str]:
    """A worker process of `command`, waiting for the run's settings on its stdin. Its own process group: a
    terminal's Ctrl-C reaches the parent only, which forwards it once."""
    env = {k: v for k, v in os.environ.items() if k not in ("JOB_COMPLETION_INDEX", "EVAL_TOTAL_SHARDS")}
    return subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, process_group=0)


def release_workers(processes: list[subprocess.Popen[str]]) -> None:
    """Workers started but never given the run's settings: their stdin closed, they exit (0) at once."""
    for process in processes:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
    for process in processes:
        try:
            process.wait(KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


SETTINGS = ("run_id", "total_shards", "sharding")  # what the parent decides when it plans, for every worker


def run_settings_line(prepared: PreparedRun) -> str:
    """The worker's first line: what the parent planned and a worker's flags cannot say before it did."""
    return json.dumps({"run_id": prepared.run_id, "total_shards": prepared.total, "sharding": prepared.mode})


def read_run_settings(lines: TextIO) -> dict[str, object] | None:
    """A worker's first line as `RunOptions` fields; None when the parent closed stdin first (nothing to run)."""
    line = lines.readline()
    if not line.strip():
        return None
    settings = json.loads(line)
    return {name: settings[name] for name in SETTINGS}


def serve_shards(
    prepared: PreparedRun, out: Path, stop: Stop, *, lines: TextIO | None = None,
    say: Callable[[str], None] | None = None,
) -> int:  # fmt: skip
    """The worker's side: asks for a shard, runs it, asks for the next as soon as no unit of it is left to start
    (its last units still in flight: the next shard fills the slots they free, so no shard's tail leaves the
    server idle), until the parent closes `lines` (stdin) or a stop comes. Every shard of the worker runs in one
    event loop under one concurrency limit per server, as the shards of one pod would. Returns the worker's exit
    code: 0, or 128 + the signal when stopped."""
    return asyncio.run(_serve(prepared, out, stop, lines or sys.stdin, say or _say))


async def _serve(prepared: PreparedRun, out: Path, stop: Stop, lines: TextIO, say: Callable[[str], None]) -> int:
    loop = asyncio.get_running_loop()
    limiters: dict[str, AdaptiveLimiter] = {}
    running: set[asyncio.Task[None]] = set()
    while not stop.requested:
        say(worker_message("ready"))
        line = await loop.run_in_executor(None, lines.readline)
        if not line.strip():
            break
        drained = asyncio.Event()
        task = asyncio.create_task(_shard(prepared, out, int(line), stop, say, drained.set, limiters))
        running.add(task)
        task.add_done_callback(running.discard)
        await drained.wait()  # set when the shard's last unit started, or when it ended
        failure = task.exception() if task.done() and not task.cancelled() else None
        if failure is not None:
            raise failure  # a bug, not a shard's failure: the worker ends loudly (no further shard)
    if running:
        await asyncio.gather(*running)
    return stop.exit_code if stop.requested else 0


async def _shard(
    prepared: PreparedRun, out: Path, index: int, stop: Stop, say: Callable[[str], None],
    drained: Callable[[], None], limiters: dict[str, AdaptiveLimiter],
) -> None:  # fmt: skip
    """One shard of a worker; its outcome (and the exit code its own process would have had) goes to the parent."""
    report = _ShardReport(index, say)
    try:
        from evaluator.prepared_shard import evaluate_prepared  # inside: its failure must still end the shard

        outcome = await evaluate_prepared(
            prepared, out, index, stop=stop, on_progress=report.progress, on_drained=drained, limiters=limiters
        )
    except Cancelled as exc:
        report.outcome("cancelled", exc.done, exc.total, code=exc.exit_code, **exc.counts)
    except EvaluatorError as exc:  # this shard's failure, as its own process would print it
        for message in exc.message.splitlines():
            print(f"error: {message}", file=sys.stderr, flush=True)
        report.outcome(None, 0, 0, code=exc.exit_code)
    else:
        report.outcome("complete", outcome.assigned, outcome.assigned, code=0, passed=outcome.passed,
                       failed=outcome.failed, errored=outcome.errored)  # fmt: skip
    finally:
        drained()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _ShardReport:
    """A shard's messages to the parent (progress at most 5 times a second, then the outcome)."""

    def __init__(self, index: int, say: Callable[[str], None]) -> None:
        self.index, self.say = index, say
        self.last = 0.0

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done < total:
            return
        self.last = now
        self.say(worker_message("progress", shard=self.index, done=done, total=total))

    def outcome(self, state: str | None, done: int, total: int, *, code: int, **counts: int) -> None:
        fields: dict[str, object] = {"shard": self.index, "done": done, "total": total, "code": code, **counts}
        if state is not None:
            fields["state"] = state
        self.say(worker_message("outcome", **fields))


def units_on_disk(out: Path, index: int, run_id: str) -> int:
    """Units with a result of run `run_id` in a shard's folder (for a shard that did not start this time)."""
    from evaluator.results import RESULTS_FILE, read_results, shard_dir  # the contract's models: not on the way to

    # starting the workers
    path = shard_dir(out, index) / RESULTS_FILE
    content = read_results(path)
    return len({(r.variant, r.case_id) for r in content.records if r.run_id == run_id})


def fill_from_manifests(shards: dict[int, ShardStatus], out: Path, run_id: str) -> None:
    """A worker that wrote its manifest but exited before its outcome message (the error budget exceeded, exit 4)
    is known from the manifest: its counts, and whether it completed."""
    from evaluator.results import MANIFEST_FILE, read_manifest, shard_dir

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
