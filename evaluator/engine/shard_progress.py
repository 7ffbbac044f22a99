"""The shard's own progress line in the log, apart from the runner so its pacing rule reads in one place.

Whoever drives the shard (a terminal's bar, a `run --workers` parent) gets every update through the runner's
`on_progress`; this line is for the log of a pod, where nobody watches a bar.
"""

from __future__ import annotations

import logging
import time

from evaluator.contract import ResultRecord
from evaluator.engine.http import ChatClient
from evaluator.progress import eta

log = logging.getLogger("evaluator.run")


class ShardProgress:
    """A log line every ~10% or 15 s: done, rate, time remaining, errors, current limits."""

    def __init__(self, index: int, total: int) -> None:
        self.index, self.total = index, total
        self.done = self.errors = 0
        self.started = self.last = time.monotonic()
        self.step = max(1, total // 10)

    def tick(self, record: ResultRecord, clients: dict[str, ChatClient]) -> None:
        self.done += 1
        self.errors += 1 if record.error is not None else 0
        now = time.monotonic()
        if self.done % self.step and now - self.last < 15 and self.done != self.total:
            return
        self.last = now
        rate = self.done / max(now - self.started, 1e-9)
        limits = ", ".join(
            f"{c.limiter.limit:.0f}" + (f" paced at {c.limiter.rate:.1f}/s" if c.limiter.rate else "")
            for c in clients.values()
        )
        log.info(
            "shard %d: %d/%d units, %.1f units/s, ETA %s, %d errored, concurrency limit %s",
            self.index, self.done, self.total, rate, eta(self.total - self.done, rate), self.errors, limits,
        )  # fmt: skip
