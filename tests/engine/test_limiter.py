"""The adaptive limiter: never more calls in flight than the limit; cut on overload, grow back on success."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from evaluator.engine.limiter import AdaptiveLimiter


def test_in_flight_never_exceeds_the_limit() -> None:
    async def scenario() -> int:
        limiter = AdaptiveLimiter(5)
        peak = 0

        async def call() -> None:
            nonlocal peak
            await limiter.acquire()
            peak = max(peak, limiter.in_flight)
            await asyncio.sleep(0.001)
            limiter.release()
            limiter.on_success()

        await asyncio.gather(*(call() for _ in range(200)))
        assert limiter.in_flight == 0
        return peak

    assert asyncio.run(scenario()) == 5


def test_overload_cuts_once_per_cooldown_and_success_grows_back() -> None:
    limiter = AdaptiveLimiter(64, 2, cooldown_s=60)
    limiter.on_overload()
    limiter.on_overload()  # same burst: counted once
    assert limiter.limit == 64 * 0.7 and limiter.decreases == 1
    for _ in range(200):
        limiter.on_success()
    assert 48 < limiter.limit <= 64
    for _ in range(10_000):
        limiter.on_success()
    assert limiter.limit == 64


def test_limit_never_drops_below_minimum() -> None:
    limiter = AdaptiveLimiter(8, 2, cooldown_s=0)
    for _ in range(50):
        limiter.on_overload()
    assert limiter.limit == 2


def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    async def scenario() -> None:
        limiter = AdaptiveLimiter(1)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        limiter.release()
        assert limiter.in_flight == 0
        await asyncio.wait_for(limiter.acquire(), 1)

    asyncio.run(scenario())


def test_a_waiter_cancelled_as_release_hands_out_the_slot_raises_cancelled_error() -> None:
    """The race: the waiter is cancelled (its future too), then release() pops that future before the waiter
    runs again. The waiter must end in CancelledError, the slot must go to the next waiter, none may leak."""

    async def scenario() -> None:
        limiter = AdaptiveLimiter(1)
        await limiter.acquire()
        first = asyncio.create_task(limiter.acquire())
        second = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)  # both wait now
        first.cancel()  # cancels its future at once
        limiter.release()  # pops the cancelled future, hands the slot to `second`
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError), results[0]
        assert results[1] is None and limiter.in_flight == 1
        limiter.release()
        assert limiter.in_flight == 0 and not limiter._waiters
        await asyncio.wait_for(limiter.acquire(), 1)

    asyncio.run(scenario())


# --- plain 429s: cut only while cutting helps ------------------------------------------------------------------
# A fluid model of a server on a fake clock: every tick (one call latency) each slot of the limit makes one call,
# and the server answers it 200 or a plain 429 (no rate-limit headers). Deterministic: no sleeping, no randomness.

TICK_S = 0.2
Answers = Callable[[int, int], list[bool]]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _simulate(limiter: AdaptiveLimiter, clock: FakeClock, answers: Answers, ticks: int) -> list[float]:
    """Runs `ticks` rounds; `answers(limit, sent_before)` gives each round's outcomes (True = plain 429) in order.
    Returns the limit at the end of every round."""
    limits: list[float] = []
    sent = 0
    for _ in range(ticks):
        clock.now += TICK_S
        outcomes = answers(int(limiter.limit), sent)
        sent += len(outcomes)
        for rejected in outcomes:
            if rejected:
                limiter.on_plain_429()
            else:
                limiter.on_success()
        limits.append(limiter.limit)
    return limits


def _storm(every: int) -> Answers:
    """Every `every`-th call is a plain 429, whatever the concurrency: a fault, not an overload."""
    return lambda limit, sent: [(sent + i + 1) % every == 0 for i in range(limit)]


def _ceiling(capacity: int) -> Answers:
    """A server that admits `capacity` calls at a time and answers the rest 429: the more sent, the more 429s."""
    return lambda limit, sent: [i >= capacity for i in range(limit)]


def test_a_429_rate_that_does_not_respond_to_concurrency_stops_cutting() -> None:
    """Every 5th call a plain 429 at any concurrency: the first cuts (it may be an overload), the experiment shows
    that cutting lowers throughput but not the share of 429s, so the limit is restored and such 429s stop cutting.
    Today's limiter cut on each one (once per cool-down) and collapsed to its minimum."""
    clock = FakeClock()
    limiter = AdaptiveLimiter(64, 1, clock=clock)
    limits = _simulate(limiter, clock, _storm(5), ticks=150)  # 30 s
    assert min(limits) >= 64 * 0.7 * 0.7 - 1  # at most two cuts, the second of them undone
    assert limits[-1] == 64  # grown back to the ceiling and kept there
    assert sum(limits[-100:]) / 100 >= 0.95 * 64
    restored = [c for c in limiter.changes if c.reason == "restored"]
    assert [c.new for c in restored] == [64]  # both cuts undone: the first only looked free (few answers yet)
    assert limiter.decreases <= 2


def test_a_429_rate_that_grows_with_concurrency_is_still_cut() -> None:
    """A server at its concurrency ceiling answers the excess 429: cutting lowers their share at no cost, so the
    limit settles around the ceiling (AIMD's saw-tooth), never back at the configured 64."""
    clock = FakeClock()
    limiter = AdaptiveLimiter(64, 1, clock=clock)
    limits = _simulate(limiter, clock, _ceiling(20), ticks=300)  # 60 s
    assert limiter.decreases >= 3
    late = limits[-150:]
    assert max(late) <= 32 and min(late) >= 10, (min(late), max(late))
    assert 14 <= sum(late) / len(late) <= 26


def test_a_server_that_turns_into_real_overload_is_cut_again() -> None:
    """Plain 429s learned to be harmless stop cutting; when their share then jumps (the server now rejects the
    excess of a concurrency ceiling), they are trusted again and the limit comes down to the ceiling."""
    clock = FakeClock()
    limiter = AdaptiveLimiter(64, 1, clock=clock)
    _simulate(limiter, clock, _storm(5), ticks=100)
    assert limiter.limit == 64
    storm = _storm(5)
    ceiling = _ceiling(20)

    def both(limit: int, sent: int) -> list[bool]:
        return [a or b for a, b in zip(storm(limit, sent), ceiling(limit, sent), strict=True)]

    limits = _simulate(limiter, clock, both, ticks=200)
    late = limits[-100:]
    assert max(late) <= 40 and sum(late) / len(late) <= 28  # a saw-tooth around the ceiling, not 64


def test_overload_and_announced_rate_limits_still_cut_while_plain_429s_are_ignored() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(64, 1, clock=clock)
    _simulate(limiter, clock, _storm(5), ticks=100)
    assert limiter.limit == 64
    cuts = limiter.decreases
    limiter.on_overload()  # a 503 or a timeout
    assert limiter.limit == 64 * 0.7 and limiter.decreases == cuts + 1
    clock.now += 5
    limiter.on_rate_limited()  # a 429 with retry-after-ms / x-ratelimit-*: paced
    assert limiter.rate is not None
