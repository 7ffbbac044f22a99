"""G-Eval steps written once per run, shared by every shard: `OUT/g_eval_steps.json` under an exclusive lock.

A G-Eval metric given only `criteria` asks the judge to write its evaluation steps. Asked once per pod, every
shard of a run could score with different steps (a judge at temperature > 0, or a judge that changed between
pods), and the run's numbers would not be comparable with each other. So the first shard to get there creates
`OUT/g_eval_steps.lock` with O_CREAT|O_EXCL (atomic on any POSIX filesystem, a PersistentVolume included), asks
the judge, writes `OUT/g_eval_steps.json` atomically and removes the lock; every other shard waits for that file
and reads it. No coordinator and no extra step is needed: a plain Indexed Job works as it is, and
`evaluator prepare` (optional) runs the same code before the Job starts.

A holder refreshes the lock's mtime while it works; a lock nobody refreshed for `STALE_S` (its pod was killed)
or left by another run is broken by the next shard, which then takes over. Should two shards ever both write
(two waiters breaking one stale lock at the same instant), each shard still records in its manifest the steps
it used, and `aggregate` records a `mixed_g_eval_steps` problem: the gate never passes such a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluator.atomic import write_text_atomic
from evaluator.errors import InfrastructureError

log = logging.getLogger("evaluator.run")

STEPS_FILE = "g_eval_steps.json"
LOCK_FILE = "g_eval_steps.lock"
STEPS_SCHEMA = "evaluator.g_eval_steps/v1"
HEARTBEAT_S = 5.0
STALE_S = 60.0
POLL_S = 0.2

Generate = Callable[[str], Awaitable[list[str]]]


class SharedSteps:
    """The run's steps file in `folder` (the run's results folder, the parent of every shard folder)."""

    def __init__(
        self, folder: Path, *, run_id: str, suite_hash: str, judge: dict[str, Any], wait_s: float = 1800.0
    ) -> None:
        self.path = folder / STEPS_FILE
        self.lock = folder / LOCK_FILE
        self.run_id = run_id
        self.suite_hash = suite_hash
        self.judge = judge
        self.wait_s = wait_s
        self.token = uuid.uuid4().hex

    async def obtain(self, definitions: dict[str, dict[str, Any]], generate: Generate) -> dict[str, list[str]]:
        """The steps of every metric in `definitions` (key -> its type, criteria and parameters): read from this
        run's file when it has them all, else generated here under the lock, or waited for."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_s
        announced = False
        while True:
            found = self._usable(definitions)
            if found is not None:
                return found
            if self._acquire():
                try:
                    return await self._write(definitions, generate)
                finally:
                    self._release()
            if not announced:
                log.info("waiting for another shard to write the G-Eval steps of run %s (%s)", self.run_id, self.lock)
                announced = True
            self._break_if_stale()
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"G-Eval steps: waited {self.wait_s:.0f}s for {self.path} (another shard holds {self.lock}); "
                    f"re-run the shard, or run `evaluator prepare` first"
                )
            await asyncio.sleep(POLL_S)

    # --- the file --------------------------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        """This run's recorded metrics (nothing for another run's file or a damaged one)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("schema") != STEPS_SCHEMA:
            return {}
        if data.get("run_id") != self.run_id or data.get("suite_hash") != self.suite_hash:
            return {}
        if data.get("judge") != self.judge:
            return {}  # steps another judge wrote: this judge writes its own (the run is re-scored with them)
        metrics = data.get("metrics")
        return metrics if isinstance(metrics, dict) else {}

    def _usable(self, definitions: dict[str, dict[str, Any]]) -> dict[str, list[str]] | None:
        recorded = self._read()
        steps = {key: _steps_of(recorded.get(key), entry) for key, entry in definitions.items()}
        if any(value is None for value in steps.values()):
            return None
        return {key: value for key, value in steps.items() if value is not None}

    async def _write(self, definitions: dict[str, dict[str, Any]], generate: Generate) -> dict[str, list[str]]:
        recorded = self._read()  # another shard may have finished between our read and our lock
        entries: dict[str, Any] = {}
        heartbeat = asyncio.ensure_future(self._heartbeat())
        try:
            for key, entry in definitions.items():
                steps = _steps_of(recorded.get(key), entry)
                if steps is None:
                    log.info("G-Eval '%s': the judge writes the evaluation steps for the whole run", key)
                    steps = await generate(key)
                entries[key] = {**entry, "evaluation_steps": steps}
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        document = {
            "schema": STEPS_SCHEMA,
            "run_id": self.run_id,
            "suite_hash": self.suite_hash,
            "judge": self.judge,
            "generated_at": datetime.now(UTC).isoformat(),
            "metrics": entries,
        }
        write_text_atomic(self.path, json.dumps(document, ensure_ascii=False, indent=1) + "\n")
        found = self._usable(definitions)  # what is on disk is what every shard reads
        if found is None:
            raise InfrastructureError(f"{self.path}: the G-Eval steps just written cannot be read back")
        return found

    # --- the lock ---------------------------------------------------------------------------------------------
    def _acquire(self) -> bool:
        try:
            descriptor = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        holder = {"token": self.token, "run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid()}
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(holder) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _release(self) -> None:
        if self._holder().get("token") == self.token:
            self.lock.unlink(missing_ok=True)

    def _holder(self) -> dict[str, Any]:
        try:
            content = json.loads(self.lock.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return content if isinstance(content, dict) else {}

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            with contextlib.suppress(OSError):
                os.utime(self.lock)

    def _break_if_stale(self) -> None:
        """Takes away a lock whose holder died (no heartbeat for STALE_S) or that another run left behind."""
        try:
            age = time.time() - self.lock.stat().st_mtime
        except FileNotFoundError:
            return
        holder = self._holder()
        foreign = bool(holder) and holder.get("run_id") != self.run_id
        if age < STALE_S and not foreign:
            return
        # Renaming is atomic: of several shards breaking the same lock, one moves it, the others find it gone.
        aside = self.lock.with_name(f"{LOCK_FILE}.stale-{self.token}")
        try:
            self.lock.rename(aside)
        except FileNotFoundError:
            return
        log.warning("broke the G-Eval steps lock %s (%s)", self.lock, "another run's" if foreign else "stale")
        aside.unlink(missing_ok=True)


def _steps_of(previous: Any, entry: dict[str, Any]) -> list[str] | None:
    """The recorded steps, when they were written for this same definition (type, criteria, parameters)."""
    if not isinstance(previous, dict) or any(previous.get(k) != v for k, v in entry.items()):
        return None
    steps = previous.get("evaluation_steps")
    if isinstance(steps, list) and steps and all(isinstance(step, str) for step in steps):
        return [str(step) for step in steps]
    return None
