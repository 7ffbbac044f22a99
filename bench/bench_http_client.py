"""Micro-benchmark: chat-completion calls/s and client CPU per call, the evaluator's HTTP path vs the openai SDK.

Not a test. Each client drives the stub server (a separate process, so client and server share the machine's
cores as they would in one pod) at a fixed concurrency; what limits calls/s is client CPU, which is the point:
one 2-core evaluator pod must drive ~500 calls/s.

    .venv/bin/python bench/bench_http_client.py                      # 5,000 calls per client, concurrency 128
    .venv/bin/python bench/bench_http_client.py --calls 1000 --clients evaluator,openai
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchlib import apply_offline_environ, int_list, print_table, stub_process

Call = Callable[[dict[str, Any]], Awaitable[str]]
# A client under test: an async context manager factory yielding `call(body) -> text`.
ClientFactory = Callable[[str, int], Any]


class EvaluatorClient:
    """The evaluator's own path: evaluator.engine.http.ChatClient with its adaptive limiter and retries."""

    def __init__(self, base_url: str, concurrency: int) -> None:
        from evaluator.engine.http import ChatClient, RetryPolicy
        from evaluator.engine.limiter import AdaptiveLimiter

        self.client = ChatClient(base_url, api_key="bench", limiter=AdaptiveLimiter(concurrency), retry=RetryPolicy())

    async def __aenter__(self) -> Call:
        await self.client.__aenter__()

        async def call(body: dict[str, Any]) -> str:
            return (await self.client.chat("target", body)).text

        return call

    async def __aexit__(self, *exc: object) -> None:
        await self.client.__aexit__(*exc)


class OpenAIClient:
    """The openai SDK, one shared AsyncOpenAI client (its best case), SDK retries off like DeepEval does."""

    def __init__(self, base_url: str, concurrency: int, *, per_call: bool = False) -> None:
        from openai import AsyncOpenAI

        def make() -> AsyncOpenAI:  # the SDK's default pool (1,000 connections) is above any concurrency here
            return AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=120.0)

        self.per_call = per_call
        self._make = make
        self.client = None if per_call else make()

    async def __aenter__(self) -> Call:
        async def call(body: dict[str, Any]) -> str:
            if self.per_call:  # what DeepEval's GPTModel/LocalModel do: a new client for every call
                client = self._make()
                try:
                    completion = await client.chat.completions.create(**body)
                finally:
                    await client.close()
            else:
                assert self.client is not None
                completion = await self.client.chat.completions.create(**body)
            return completion.choices[0].message.content or ""

        return call

    async def __aexit__(self, *exc: object) -> None:
        if self.client is not None:
            await self.client.close()


CLIENTS: dict[str, ClientFactory] = {
    "evaluator": EvaluatorClient,
    "openai": OpenAIClient,
    "openai-per-call": lambda url, c: OpenAIClient(url, c, per_call=True),
}


async def drive(factory: ClientFactory, base_url: str, calls: int, concurrency: int) -> dict[str, float]:
    body = {"model": "bench", "messages": [{"role": "user", "content": "Say something short."}], "max_tokens": 16}
    async with factory(base_url, concurrency) as call:
        for _ in range(min(concurrency, 64)):  # warm up connections and imports
            await call(body)
        semaphore = asyncio.Semaphore(concurrency)
        failures = 0

        async def one(i: int) -> None:
            nonlocal failures
            async with semaphore:
                try:
                    await call({**body, "messages": [{"role": "user", "content": f"Say something short ({i})."}]})
                except Exception:
                    failures += 1

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"wall_s": wall, "calls_per_s": calls / wall, "cpu_us_per_call": cpu / calls * 1e6, "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000, help="calls per client and concurrency")
    parser.add_argument("--concurrency", type=int_list, default=[128], help="comma list, e.g. 64,128")
    parser.add_argument("--latency", type=float, default=0.0, help="stub latency in seconds (0 = CPU-bound)")
    parser.add_argument("--clients", default="evaluator,openai,openai-per-call", help=f"of {','.join(CLIENTS)}")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    apply_offline_environ()
    names = [n for n in args.clients.split(",") if n]
    unknown = set(names) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    rows: list[dict[str, Any]] = []
    print(f"{os.cpu_count()} CPUs; stub latency {args.latency}s; {args.calls} calls per row", flush=True)
    with stub_process(latency=args.latency) as base_url:
        for concurrency in args.concurrency:
            for name in names:
                result = asyncio.run(drive(CLIENTS[name], base_url, args.calls, concurrency))
                rows.append({"client": name, "concurrency": concurrency, **result})
                print(f"  {name} @ {concurrency}: {result['calls_per_s']:.0f} calls/s", flush=True)
    print()
    headers = ["client", "concurrency", "calls/s", "client CPU µs/call", "wall s", "failures"]
    keys = ["client", "concurrency", "calls_per_s", "cpu_us_per_call", "wall_s", "failures"]
    print_table(
        headers, [[round(r[k]) if k in ("calls_per_s", "cpu_us_per_call") else r[k] for k in keys] for r in rows]
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
