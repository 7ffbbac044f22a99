"""The adaptive limiter: never more calls in flight than the limit; cut on overload, grow back on success."""

from __future__ import annotations

import asyncio

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
