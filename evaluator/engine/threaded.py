"""Synchronous metric code on the shard's asynchronous judge: a worker thread whose judge calls run on the loop.

Some metrics can only be measured synchronously: a user's custom metric that implements `measure` alone, and
DeepEval metrics whose async path still makes a synchronous judge call (registry: `sync_only`). Such a metric
runs in a worker thread with a judge whose `generate` hands each call to the shard's event loop and waits for it,
so the calls still share the endpoint's keep-alive session, adaptive limit, retries and per-case call records
(the case's context travels with the thread and with each call).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from deepeval.models import DeepEvalBaseLLM


def quiet(method: Any) -> dict[str, Any]:
    """DeepEval's progress indicator off, when the method takes the flag (a user's method may not)."""
    parameters = inspect.signature(method).parameters
    takes_it = "_show_indicator" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    return {"_show_indicator": False} if takes_it else {}


# Threads spend their time waiting for judge calls on the loop, so there are many: asyncio's default executor
# (cpu count + 4 threads) would cap such metrics at a handful of cases in flight, below the adaptive limit.
MAX_THREADS = 64
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="sync-metric")
    return _executor


async def measure_in_thread(metric: Any, test_case: Any) -> None:
    """`metric.measure(test_case)` in a worker thread (its model must come from `bind_judge`); the case's context
    (its call records) goes with it, as with `asyncio.to_thread`."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, metric.measure, test_case, **quiet(metric.measure))
    await asyncio.get_running_loop().run_in_executor(_pool(), call)


class _LoopBoundCalls:
    """Methods outside the DeepEvalBaseLLM subclass on purpose: DeepEval wraps methods defined on a subclass in
    tracing spans (see engine/judge.py)."""

    judge: DeepEvalBaseLLM
    loop: asyncio.AbstractEventLoop

    def load_model(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def get_model_name(self, *args: Any, **kwargs: Any) -> str:
        return str(self.judge.get_model_name())

    async def a_generate(self, *args: Any, **kwargs: Any) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - a coroutine always runs in a loop
            running = None
        if running is self.loop:
            return await self.judge.a_generate(*args, **kwargs)
        # A metric that runs its own loop in the worker thread: the call still goes through the shard's loop.
        future = asyncio.run_coroutine_threadsafe(self.judge.a_generate(*args, **kwargs), self.loop)
        return await asyncio.wrap_future(future)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("generate() called on the event loop; a metric's async code must use a_generate()")
        return asyncio.run_coroutine_threadsafe(self.judge.a_generate(*args, **kwargs), self.loop).result()


class _LoopBoundJudge(_LoopBoundCalls, DeepEvalBaseLLM):  # type: ignore[no-untyped-call]
    def __init__(self, judge: DeepEvalBaseLLM, loop: asyncio.AbstractEventLoop) -> None:
        self.judge = judge
        self.loop = loop
        super().__init__(str(judge.get_model_name()))


def bind_judge(judge: DeepEvalBaseLLM) -> DeepEvalBaseLLM:
    """The shared judge, also callable synchronously from a worker thread (bound to the running loop; outside a
    loop, e.g. at load-time checks, the judge itself)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return judge
    if isinstance(judge, _LoopBoundJudge):
        return judge
    return _LoopBoundJudge(judge, loop)
