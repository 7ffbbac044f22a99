"""Adaptive concurrency and pacing for one server: run as fast as it answers, and no faster.

Two limits, both learned from the server's answers:
- concurrency (AIMD, like TCP congestion control): starts at the configured ceiling, cut by 30 % on overload
  (503, timeouts, the first rate-limit 429, plain 429s while cutting helps) at most once per cool-down, grown
  back by about one slot per window of successful calls;
- request rate (pacing), engaged by the first 429 that announces a request-rate limit (`retry-after-ms`,
  `x-ratelimit-*`, as hosted APIs send them): such APIs often count rejected requests against the limit, so
  hammering them at a too-high concurrency wastes the budget. On such a 429 the pace is set just below the
  rate the server was accepting (measured over the last seconds), then probed upward slowly (quickly while
  far below the best rate seen while paced), so throughput stays near the limit while few requests are
  rejected;
- plain 429s (no `retry-after-ms` or `x-ratelimit-*`; a `Retry-After` alone does not announce a rate limit):
  a server at its concurrency ceiling sends them, and so do proxies and faults that reject a share of calls
  whatever the load. The limiter cannot tell which from one 429, so it asks the server: the first plain 429
  cuts concurrency like an overload, and the cut is an experiment, tested over the next window of answers. If
  the share of plain 429s fell, or the accepted rate held (the server was full anyway), it was an overload
  and later plain 429s cut again. If neither (the same share of 429s, and fewer answers because fewer were
  asked), cutting does not help: the limit is restored and plain 429s stop cutting (their calls are still
  retried with backoff, so nothing is lost), until their share rises well above the share that was learned
  harmless, which makes them trusted again. 503s, timeouts and announced rate limits cut as before.

Target and judge calls share one limiter when they share a server. Every change is recorded (time, old, new,
reason) for the shard manifest and the HTML report's plot.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from evaluator.contract import LimitChange

RATE_WINDOW_S = 2.0  # accepted calls counted over this window to estimate the server's rate
RATE_CUT = 0.95  # after a 429, pace at this share of the accepted rate
RATE_PROBE_PER_S = 0.04  # then grow the pace by 4 % per second without a 429 ...
RATE_RECOVER_PER_S = 0.25  # ... or by 25 % per second while below 90 % of the rate last accepted
MIN_RATE = 0.5  # requests per second: never pace slower
MAX_RATE = 100_000.0
CUT_HELPED_SHARE = 0.85  # a cut helped if the share of plain 429s fell below this part of the share before
# (and by more than two standard errors: a share measured on few answers is noisy) ...
CUT_KEPT_RATE = 0.85  # ... or the accepted rate stayed above this part of the rate before
MIN_ANSWERS = 100  # answers (and at least one window) before a learned share is re-checked, and accepted
# answers before a cut is tested: a share or a rate within ~10 %, not noise
REARM_FACTOR = 1.5  # plain 429s are trusted again when their share exceeds REARM_FACTOR x the learned share ...
REARM_MARGIN = 0.05  # ... plus this


def _keep_window(times: collections.deque[float], now: float, window_s: float) -> None:
    """Records an event at `now` in `times`, which keeps the last `window_s` seconds of them (a rate's window)."""
    times.append(now)
    while times and times[0] < now - window_s:
        times.popleft()


@dataclass
class _Trial:
    """A cut made on a plain 429, under test: did it lower the share of 429s, or at least cost no throughput?"""

    restore_to: float  # the limit before the cut
    share_before: float  # plain 429s / answers over the window before the cut
    answers_before: int  # how many answers that share was measured on
    rate_before: float  # accepted calls per second over that window
    skip: int  # answers of calls sent before the cut, not counted
    started: float = 0.0
    accepted: int = 0
    rejected: int = 0


class AdaptiveLimiter:
    """An asyncio semaphore whose size, and whose pace once a server rate-limits, adapt to the server."""

    def __init__(
        self,
        maximum: int,
        minimum: int = 1,
        *,
        decrease_factor: float = 0.7,
        cooldown_s: float = 1.0,
        window_s: float = RATE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maximum = maximum
        self.minimum = max(1, min(minimum, maximum))
        self.limit = float(maximum)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.decreases = 0
        self.rate: float | None = None  # requests per second once paced; None: not paced
        self.changes: list[LimitChange] = []
        self._decrease_factor = decrease_factor
        self._cooldown_s = cooldown_s
        self._window_s = window_s
        self._clock = clock
        self._last_decrease = -1e9
        self._last_rate_cut = -1e9
        self._best_rate = 0.0
        self._next_send = 0.0
        self._rate_updated = 0.0
        self._recorded_limit = float(maximum)
        self._accepted: collections.deque[float] = collections.deque()
        self._plain_429s: collections.deque[float] = collections.deque()
        self._trial: _Trial | None = None
        self._unproven_since: float | None = None  # the limit before a run of cuts that cost nothing but showed nothing
        self._unproven_share = (0.0, 0)  # the share of plain 429s (and its answers) before that run
        self._plain_429s_harmless = False  # learned: cutting did not lower their share
        self._harmless_share = 0.0
        self._watch_started = 0.0
        self._watch_accepted = 0
        self._watch_rejected = 0
        self._started = clock()
        self._started_wall = datetime.now(UTC)
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    # --- concurrency ------------------------------------------------------------------------------------
    async def acquire(self) -> None:
        """Waits for the pace (when paced), then for a slot."""
        if self.rate is not None:
            await self._pace()
        if self.in_flight < int(self.limit) and not self._waiters:
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over just as we were cancelled: pass it on
            elif future in self._waiters:
                self._waiters.remove(future)
            # else: cancelled, then popped by _wake() before this task ran again: nothing to undo
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def on_success(self) -> None:
        """Additive increase: about +1 slot per `limit` successes; counts the call toward the accepted rate."""
        now = self._clock()
        _keep_window(self._accepted, now, self._window_s)
        self._observe(now, rejected=False)
        if self.limit < self.maximum and self._trial is None:  # a cut under test holds its level
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
            grown = self.limit - self._recorded_limit
            if self.limit >= self.maximum or grown >= max(1.0, 0.1 * self.maximum):
                self._record("concurrency", self._recorded_limit, self.limit, "recovered")
            self._wake()

    def on_overload(self) -> None:
        """Multiplicative decrease, at most once per cool-down so one burst of 503s or timeouts counts once."""
        self._trial = None  # a real overload during a trial makes its verdict meaningless
        self._unproven_since = None
        self._cut(self._clock())

    def on_plain_429(self) -> None:
        """A 429 that announces no rate limit: cut as an overload unless cutting was learned not to help."""
        now = self._clock()
        _keep_window(self._plain_429s, now, self._window_s)
        self._observe(now, rejected=True)
        if self._plain_429s_harmless or self._trial is not None:
            return
        window = min(self._window_s, max(0.05, now - self._started))
        accepted = sum(1 for t in self._accepted if t >= now - window)
        rejected = sum(1 for t in self._plain_429s if t >= now - window)
        restore_to = self.limit
        if self._cut(now):
            self._trial = _Trial(
                restore_to=restore_to,
                share_before=rejected / (accepted + rejected),
                answers_before=accepted + rejected,
                rate_before=accepted / window,
                skip=self.in_flight,
                started=now,
            )

    def _cut(self, now: float) -> bool:
        if now - self._last_decrease < self._cooldown_s:
            return False
        self._last_decrease = now
        old = self.limit
        self.limit = max(float(self.minimum), self.limit * self._decrease_factor)
        self.decreases += 1
        self._record("concurrency", old, self.limit, "overload")
        return True

    def _observe(self, now: float, *, rejected: bool) -> None:
        """One answer (accepted, or a plain 429) toward the running trial or the watch on a learned share."""
        trial = self._trial
        if trial is not None:
            if trial.skip > 0:  # sent at the old limit
                trial.skip -= 1
                trial.started = now
                return
            trial.rejected += rejected
            trial.accepted += not rejected
            elapsed = now - trial.started
            if elapsed >= self._window_s and trial.accepted >= MIN_ANSWERS:
                self._conclude(trial, elapsed)
        elif self._plain_429s_harmless:
            self._watch_rejected += rejected
            self._watch_accepted += not rejected
            answers = self._watch_accepted + self._watch_rejected
            if now - self._watch_started >= self._window_s and answers >= MIN_ANSWERS:
                share = self._watch_rejected / answers
                if share > self._harmless_share * REARM_FACTOR + REARM_MARGIN:
                    self._plain_429s_harmless = False  # a new kind of 429: trust it again (and test it again)
                self._watch_started, self._watch_accepted, self._watch_rejected = now, 0, 0

    def _conclude(self, trial: _Trial, elapsed: float) -> None:
        self._trial = None
        answers = trial.accepted + trial.rejected
        share_after = trial.rejected / answers
        fell = _fell(trial.share_before, trial.answers_before, share_after, answers)
        if self._unproven_since is not None:  # or fell over the whole run of cuts (each step may be small)
            fell = fell or _fell(*self._unproven_share, share_after, answers)
        if fell:
            self._unproven_since = None
            return  # fewer 429s at a lower limit: an overload, cut again when they come back
        if trial.accepted / elapsed >= trial.rate_before * CUT_KEPT_RATE:
            # As many answers at a lower limit: the server was full, or the client was (a busy machine), or
            # the rate before was measured too low (the first answers of a run). Cut again when 429s come
            # back; if a later cut proves harmful, every cut since this one is undone.
            if self._unproven_since is None:
                self._unproven_since = trial.restore_to
                self._unproven_share = (trial.share_before, trial.answers_before)
            return
        restore_to = max(trial.restore_to, self._unproven_since or 0.0)
        self._unproven_since = None
        self._plain_429s_harmless = True
        self._harmless_share = max(trial.share_before, share_after)
        self._watch_started, self._watch_accepted, self._watch_rejected = self._clock(), 0, 0
        if restore_to > self.limit:
            old = self.limit
            self.limit = min(float(self.maximum), restore_to)
            self._record("concurrency", old, self.limit, "restored")
            self._wake()

    def on_rate_limited(self) -> None:
        """A rate-limit 429: pace just below the rate the server was accepting; the first also cuts concurrency."""
        now = self._clock()
        if now - self._last_rate_cut < self._cooldown_s / 2:
            return  # one burst of 429s is one signal
        self._last_rate_cut = now
        # Over the last seconds, or since the start: an estimate too high is corrected by the next 429, one too
        # low would cost throughput for many seconds.
        window = min(self._window_s, max(0.05, now - self._started))
        accepted = sum(1 for t in self._accepted if t >= now - window) / window
        if self.rate is None:
            self.on_overload()
        self._best_rate = accepted  # the rate the server last accepted: recover to it fast, probe beyond slowly
        old = self.rate
        cut = accepted * RATE_CUT if accepted > 0 else (self.rate or float(self.maximum)) * 0.5
        self.rate = max(MIN_RATE, min(cut, old * RATE_CUT) if old is not None else cut)
        self._rate_updated = now
        self._next_send = max(self._next_send, now + 1.0 / self.rate)  # a short pause: let the bucket refill
        self._record("rate", old if old is not None else 0.0, self.rate, "rate_limited")

    # --- pacing -----------------------------------------------------------------------------------------
    async def _pace(self) -> None:
        """Wait for the next send time at the current rate (probing the rate upward as time passes).

        Waiters re-check after sleeping instead of holding a reservation, so a cut takes effect at once for
        every call already waiting, not only for calls that arrive after it.
        """
        while self.rate is not None:
            now = self._clock()
            quiet = now - self._rate_updated
            if quiet > 0.1:
                speed = RATE_RECOVER_PER_S if self.rate < 0.9 * self._best_rate else RATE_PROBE_PER_S
                self.rate = min(self.rate * (1 + speed * quiet), MAX_RATE)
                self._rate_updated = now
            if now >= self._next_send:
                self._next_send = max(now, self._next_send) + 1.0 / self.rate
                return
            await asyncio.sleep(self._next_send - now)

    # --- bookkeeping ------------------------------------------------------------------------------------
    def _record(self, limit: Literal["concurrency", "rate"], old: float, new: float, reason: str) -> None:
        elapsed = self._clock() - self._started
        if limit == "concurrency":
            self._recorded_limit = new
        self.changes.append(
            LimitChange(
                time=(self._started_wall + timedelta(seconds=elapsed)).isoformat(),
                elapsed_s=round(elapsed, 3),
                limit=limit,
                old=round(old, 2),
                new=round(new, 2),
                reason=reason,
            )
        )

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


def _fell(before: float, answers_before: int, after: float, answers_after: int) -> bool:
    """The share of plain 429s fell: below CUT_HELPED_SHARE of before, and by more than two standard errors."""
    pooled = (before * answers_before + after * answers_after) / (answers_before + answers_after)
    noise = 2.0 * math.sqrt(pooled * (1 - pooled) * (1 / answers_before + 1 / answers_after))
    return after <= before * CUT_HELPED_SHARE and before - after > noise
