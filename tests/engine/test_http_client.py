"""The chat client against a real local server: Retry-After honoured, errors classified, attempts recorded."""

from __future__ import annotations

import asyncio
import time

import pytest

from evaluator.engine.http import CallError, ChatClient, ChatResult, RetryPolicy, current_calls
from evaluator.engine.limiter import AdaptiveLimiter
from openai_stub.server import running_stub

BODY = {"model": "stub-model", "messages": [{"role": "user", "content": "Answer with exactly: hi"}]}


def client(base_url: str, **retry: float) -> ChatClient:
    policy = RetryPolicy(**{"max_attempts": 4, "backoff_base_s": 0.01, "backoff_max_s": 0.05, **retry})  # type: ignore[arg-type]
    return ChatClient(base_url, api_key="sk-test", limiter=AdaptiveLimiter(8), retry=policy)


def test_success_records_tokens_and_latency() -> None:
    async def scenario() -> None:
        async with running_stub(latency=0.02, api_key="sk-test") as server, client(server.base_url) as chat:
            calls: list = []
            current_calls.set(calls)
            result = await chat.chat("target", BODY)
            assert result.text == "hi"
            assert calls == [result.record]
            assert result.record.attempts == 1 and result.record.latency_s >= 0.02
            assert result.record.prompt_tokens > 0 and result.record.completion_tokens > 0

    asyncio.run(scenario())


def test_retry_after_is_honoured() -> None:
    async def scenario() -> None:
        async with running_stub(rate_429=1.0, retry_after=0.3) as server, client(server.base_url) as chat:
            started = time.perf_counter()
            with pytest.raises(CallError) as failure:
                await chat.chat("judge", BODY)
            elapsed = time.perf_counter() - started
            assert failure.value.kind == "rate_limited"
            assert failure.value.record is not None and failure.value.record.attempts == 4
            assert elapsed >= 3 * 0.3  # three waits of at least Retry-After between four attempts
            assert chat.limiter.limit < 8  # and the limit was cut

    asyncio.run(scenario())


def test_client_errors_are_not_retried_and_keys_are_not_echoed() -> None:
    async def scenario() -> None:
        async with running_stub(api_key="sk-other") as server, client(server.base_url) as chat:
            with pytest.raises(CallError) as failure:
                await chat.chat("target", BODY)
            assert failure.value.kind == "http_4xx" and failure.value.record is not None
            assert failure.value.record.attempts == 1
            assert "sk-test" not in failure.value.message

    asyncio.run(scenario())


def test_timeouts_are_classified_and_retried() -> None:
    async def scenario() -> None:
        async with (
            running_stub(rate_hang=1.0, hang_seconds=5) as server,
            client(server.base_url, timeout_s=0.2) as chat,
        ):
            with pytest.raises(CallError) as failure:
                await chat.chat("target", BODY)
            assert failure.value.kind == "timeout" and failure.value.record is not None
            assert failure.value.record.attempts == 4

    asyncio.run(scenario())


def test_unreachable_server_is_a_connection_error() -> None:
    async def scenario() -> None:
        async with client("http://127.0.0.1:9/v1") as chat:
            with pytest.raises(CallError) as failure:
                await chat.chat("target", BODY)
            assert failure.value.kind == "connection"

    asyncio.run(scenario())


def test_a_rate_limit_429_is_retried_after_retry_after_ms_and_paced() -> None:
    """Hosted APIs say when to retry in `retry-after-ms` (Retry-After is whole seconds, here 1): honoured, and
    the limiter paces the rest at the rate the server accepts instead of bouncing off it."""

    async def scenario() -> None:
        async with running_stub(rate_limit=100, rate_burst=5) as server, client(server.base_url) as chat:
            chat.retry.max_attempts = 20
            started = time.perf_counter()
            results = await asyncio.gather(*(chat.chat("target", BODY) for _ in range(40)))
            elapsed = time.perf_counter() - started
            assert all(r.text == "hi" for r in results)
            assert server.stats.faults["rate_limit"] > 0  # it did push back
            assert elapsed < 0.9  # 40 calls at 100/s: no 1-second Retry-After wait was needed
            assert chat.limiter.rate is not None
            assert any(c.limit == "rate" and c.reason == "rate_limited" for c in chat.limiter.changes)

    asyncio.run(scenario())


def _answered_once(results: list[ChatResult], count: int) -> None:
    assert [r.text for r in results] == [f"{i}" for i in range(count)]  # every call answered, each its own


def _bodies(count: int) -> list[dict[str, object]]:
    return [{"model": "stub-model", "messages": [{"role": "user", "content": f"Answer with exactly: {i}"}]}
            for i in range(count)]  # fmt: skip


def test_a_storm_of_plain_429s_does_not_collapse_concurrency_and_nothing_is_lost() -> None:
    """Every 5th attempt a 429 without rate-limit headers, whatever the concurrency (a fault, not an overload):
    after one experiment the limiter keeps its concurrency instead of cutting on every 429, and every call is
    retried until answered. (Cool-down and experiment window scaled to the 40 ms server.)"""
    count = 1500

    async def scenario() -> None:
        async with running_stub(latency=0.04, rate_429=0.2, retry_after=0.02) as server:
            limiter = AdaptiveLimiter(32, cooldown_s=0.1, window_s=0.3)
            policy = RetryPolicy(max_attempts=20, backoff_base_s=0.01, backoff_max_s=0.05)
            async with ChatClient(server.base_url, api_key=None, limiter=limiter, retry=policy) as chat:
                results = await asyncio.gather(*(chat.chat("target", body) for body in _bodies(count)))
            _answered_once(results, count)
            assert server.stats.by_status["200"] == count and server.stats.faults["rate_limited"] > count * 0.15
            assert limiter.decreases <= 3, limiter.changes
            assert limiter.limit >= 0.9 * 32, limiter.changes

    asyncio.run(scenario())


def test_429s_from_a_concurrency_ceiling_still_cut_and_nothing_is_lost() -> None:
    """A server that admits 6 calls at a time answers the excess 429 (Retry-After only): that is overload,
    cutting helps, so the limit comes down toward the ceiling; every call is still answered exactly once."""
    count = 900

    async def scenario() -> None:
        async with running_stub(latency=0.03, max_concurrency=6, retry_after=0.02) as server:
            limiter = AdaptiveLimiter(32, cooldown_s=0.1, window_s=0.5)
            policy = RetryPolicy(max_attempts=50, backoff_base_s=0.01, backoff_max_s=0.05)
            async with ChatClient(server.base_url, api_key=None, limiter=limiter, retry=policy) as chat:
                results = await asyncio.gather(*(chat.chat("target", body) for body in _bodies(count)))
            _answered_once(results, count)
            assert server.stats.by_status["200"] == count and server.stats.faults["ceiling"] > 0
            assert limiter.decreases >= 3
            assert limiter.limit <= 16, limiter.changes

    asyncio.run(scenario())


def test_a_call_record_as_a_dict_carries_every_field() -> None:
    """`as_dict` is written out field by field (it runs for every call): a new field must not be dropped."""
    from dataclasses import asdict, fields

    from evaluator.engine.http import CallRecord

    record = CallRecord("judge", 0.1, 0.2, 2, 3, 4, 200, None, True)
    assert set(record.as_dict()) == {f.name for f in fields(CallRecord)}
    assert record.as_dict() == asdict(record)
