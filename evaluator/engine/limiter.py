"""Adaptive concurrency for one endpoint (AIMD, like TCP congestion control).

Starts at the configured ceiling, halves-ish on overload (429, 503, timeouts) at most once per cool-down, and
grows back by about one slot per window of successful calls. Target and judge calls share one limiter when they
share a server, so the evaluator never pushes a server past what it answers without throttling.
"""

from __future__ import annotations

import asyncio
import collections
import time


class AdaptiveLimiter:
    """An asyncio semaphore whose size adapts to the server's answers."""

    def __init__(
        self,
        maximum: int,
        minimum: int = 1,
        *,
        decrease_factor: float = 0.7,
        cooldown_s: float = 1.0,
    ) -> None:
        self.maximum = maximum
        self.minimum = max(1, min(minimum, maximum))
        self.limit = float(maximum)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.decreases = 0
        self._decrease_factor = decrease_factor
        self._cooldown_s = cooldown_s
        self._last_decrease = -1e9
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self.in_flight < int(self.limit) and not self._waiters:
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over just as we were cancelled
            else:
                self._waiters.remove(future)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def on_success(self) -> None:
        """Additive increase: about +1 slot per `limit` successes."""
        if self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
            self._wake()

    def on_overload(self) -> None:
        """Multiplicative decrease, at most once per cool-down so one burst of 429s counts once."""
        now = time.monotonic()
        if now - self._last_decrease < self._cooldown_s:
            return
        self._last_decrease = now
        self.limit = max(float(self.minimum), self.limit * self._decrease_factor)
        self.decreases += 1

    def _take(self) -> None:
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            future = self._waiters.popleft()
            if not future.done():
                self._take()
                future.set_result(None)
