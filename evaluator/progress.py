"""Progress of a run for people and for logs: a live bar with an ETA on a terminal, a periodic line otherwise.

`ProgressMeter` only needs "done out of total" updates, so the same meter follows one shard, or every shard of a
`run --workers` through the messages its worker processes print (`worker_message` / `read_worker_message`: one
JSON object a line on the worker's stdout, whatever starts the workers).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

log = logging.getLogger("evaluator.progress")

WORKER_PREFIX = "evaluator-worker "  # lines a worker prints for its parent, on its stdout


def eta(remaining: int, rate: float) -> str:
    """`H:MM:SS` until `remaining` units are done at `rate` units/s; `?` before any rate is known."""
    if remaining <= 0:
        return "0:00:00"
    if rate <= 0:
        return "?"
    seconds = int(remaining / rate + 0.5)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressMeter:
    """Done-out-of-total for a run: `update(done)` as it moves, `close()` at the end.

    On a terminal (`live`) a rich progress bar with the rate and the time remaining; otherwise a log line on every
    tenth of the work and at least every `interval_s` while it moves: `run ID: 120/300 units (40%), 11.8 units/s,
    ETA 0:00:15`. The rate counts only this attempt's work (units already done when it started are not speed)."""

    def __init__(
        self, label: str, total: int, *, done: int = 0, live: bool = False, interval_s: float = 15.0,
        stream: TextIO | None = None,
    ) -> None:  # fmt: skip
        self.label, self.total = label, total
        self.start_done = self.done = done
        self.started = self.last = time.monotonic()
        self.interval_s = interval_s
        self.step = max(1, total // 10)
        self._next = done + self.step
        self._bar: Any = None
        if live and total:
            self._bar = self._start_bar(stream or sys.stderr)
            self._bar.update(self._task, completed=done)

    def _start_bar(self, stream: TextIO) -> Any:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("units"),
            TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(file=stream, force_terminal=True), transient=False, refresh_per_second=4,
        )  # fmt: skip
        self._task = bar.add_task(self.label, total=self.total, rate="")
        bar.start()
        return bar

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        percent = int(100 * self.done / self.total) if self.total else 100
        return (
            f"{self.label}: {self.done}/{self.total} units ({percent}%), {self.rate:.1f} units/s, "
            f"ETA {eta(self.total - self.done, self.rate)}"
        )

    def update(self, done: int) -> None:
        done = min(done, self.total)
        moved, self.done = done != self.done, done
        if self._bar is not None:
            self._bar.update(self._task, completed=done, rate=f"{self.rate:.1f}/s")
            return
        now = time.monotonic()
        if not moved:
            return
        if done >= self._next or now - self.last >= self.interval_s or done == self.total:
            self.last = now
            self._next = done + self.step
            log.info("%s", self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# --- what a worker process tells its parent ----------------------------------------------------------------
def worker_message(kind: str, **content: Any) -> str:
    """One line for the parent: `evaluator-worker {"kind": ..., ...}`."""
    return WORKER_PREFIX + json.dumps({"kind": kind, **content}, separators=(",", ":"))


def read_worker_message(line: str) -> dict[str, Any] | None:
    """A worker's message, or None for any other line."""
    if not line.startswith(WORKER_PREFIX):
        return None
    try:
        content = json.loads(line[len(WORKER_PREFIX) :])
    except ValueError:
        return None
    return content if isinstance(content, dict) else None
