"""The DeepEval side of bench_throughput.py, run in its own process: `deepeval.evaluate()` or a serial loop.

Modes (the same cases, the same stub, AnswerRelevancy; judge per --judge: DeepEval's own `GPTModel` provider
class pointed at the stub with `base_url` (`gpt-4o-mini` is only the name DeepEval uses to pick structured
outputs; nothing leaves the machine), or a user-written DeepEvalBaseLLM on one shared AsyncOpenAI client):

- defaults: `evaluate(test_cases, [metric])` exactly as documented, every config at its default
  (AsyncConfig max_concurrent=20, result cache written, DeepEval's per-task and gather timeouts on,
  a new OpenAI client per judge call).
- tuned:    AsyncConfig(max_concurrent=C), CacheConfig(write_cache=False, use_cache=False),
            DEEPEVAL_DISABLE_TIMEOUTS=1 (no per-attempt/per-task/gather timeout), no progress bar or result
            printing; judge: the custom DeepEvalBaseLLM on one shared client (the fastest judge found).
- serial:   one case at a time: target call, then `metric.measure()` synchronously.

The target call (the app under test) is not part of DeepEval: it is made here with one lean aiohttp session at
the same concurrency before `evaluate()`, and its time is included in the wall time.
Prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import OutboundGuard, apply_offline_environ

TARGET_MODEL = "bench-target"
JUDGE_MODEL = "gpt-4o-mini"  # a model DeepEval knows supports structured outputs -> json_schema requests


def load_cases(path: Path, limit: int | None) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        cases = [json.loads(line) for line in handle if line.strip()]
    return cases[:limit] if limit else cases


async def target_outputs(base_url: str, cases: list[dict[str, Any]], concurrency: int) -> list[str]:
    """The app under test, outside DeepEval: one lean aiohttp session so this phase costs DeepEval nothing."""
    import aiohttp

    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency + 8)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(case: dict[str, Any]) -> str:
            body = {"model": TARGET_MODEL, "messages": [{"role": "user", "content": case["input"]}], "max_tokens": 64}
            async with semaphore, session.post(f"{base_url}/chat/completions", json=body) as response:
                response.raise_for_status()
                data = await response.json()
            return str(data["choices"][0]["message"]["content"] or "")

        return await asyncio.gather(*(one(c) for c in cases))


class SharedClientJudge:
    """Built lazily as a DeepEvalBaseLLM subclass: what a user writes for a fast DeepEval judge
    (one AsyncOpenAI client for every call, structured outputs through the SDK's parse)."""

    @staticmethod
    def create(base_url: str) -> Any:
        from deepeval.models import DeepEvalBaseLLM
        from openai import AsyncOpenAI, OpenAI

        class Judge(DeepEvalBaseLLM):  # type: ignore[misc]
            def __init__(self) -> None:
                self.async_client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=3)
                self.sync_client = OpenAI(base_url=base_url, api_key="bench", max_retries=3)
                super().__init__(JUDGE_MODEL)

            def load_model(self) -> Any:
                return self.async_client

            def get_model_name(self) -> str:
                return f"{JUDGE_MODEL} (shared client)"

            def generate(self, prompt: str, schema: Any = None) -> Any:
                messages = [{"role": "user", "content": prompt}]
                if schema is None:
                    reply = self.sync_client.chat.completions.create(model=JUDGE_MODEL, messages=messages)
                    return reply.choices[0].message.content
                parsed = self.sync_client.beta.chat.completions.parse(
                    model=JUDGE_MODEL, messages=messages, response_format=schema
                )
                return parsed.choices[0].message.parsed

            async def a_generate(self, prompt: str, schema: Any = None) -> Any:
                messages = [{"role": "user", "content": prompt}]
                if schema is None:
                    reply = await self.async_client.chat.completions.create(model=JUDGE_MODEL, messages=messages)
                    return reply.choices[0].message.content
                parsed = await self.async_client.beta.chat.completions.parse(
                    model=JUDGE_MODEL, messages=messages, response_format=schema
                )
                return parsed.choices[0].message.parsed

        return Judge()


def judge(base_url: str, kind: str) -> Any:
    """gptmodel: DeepEval's GPTModel as shipped (a new OpenAI client per call); gptmodel-shared: the same with
    one shared async HTTP client (its `async_http_client` knob); custom: a DeepEvalBaseLLM on one AsyncOpenAI."""
    from deepeval.models import GPTModel

    if kind == "custom":
        return SharedClientJudge.create(base_url)
    if kind == "gptmodel-shared":
        from openai import DefaultAsyncHttpxClient

        return GPTModel(
            model=JUDGE_MODEL, base_url=base_url, api_key="bench", async_http_client=DefaultAsyncHttpxClient()
        )
    return GPTModel(model=JUDGE_MODEL, base_url=base_url, api_key="bench")


def run_evaluate(
    mode: str, base_url: str, cases: list[dict[str, Any]], concurrency: int, judge_kind: str
) -> dict[str, Any]:
    from deepeval import evaluate
    from deepeval.evaluate import AsyncConfig, CacheConfig, DisplayConfig
    from deepeval.metrics import AnswerRelevancyMetric
    from deepeval.test_case import LLMTestCase

    started = time.perf_counter()
    outputs = asyncio.run(target_outputs(base_url, cases, concurrency))
    target_s = time.perf_counter() - started
    test_cases = [
        LLMTestCase(input=c["input"], actual_output=o, expected_output=c.get("expected_output"), name=c["id"])
        for c, o in zip(cases, outputs, strict=True)
    ]
    metric = AnswerRelevancyMetric(model=judge(base_url, judge_kind), threshold=0.5)
    kwargs: dict[str, Any] = {}
    if mode == "tuned":
        kwargs = {
            "async_config": AsyncConfig(max_concurrent=concurrency),
            "cache_config": CacheConfig(write_cache=False, use_cache=False),
            "display_config": DisplayConfig(show_indicator=False, print_results=False, inspect_after_run=False),
        }
    error = None
    results: list[Any] = []
    evaluate_started = time.perf_counter()
    try:
        outcome = evaluate(test_cases, [metric], **kwargs)
        results = list(outcome.test_results)
    except BaseException as exc:  # a gather timeout is the interesting outcome of the defaults run
        error = f"{type(exc).__name__}: {exc}"[:300]
    wall = time.perf_counter() - started
    scored = sum(1 for r in results if r.metrics_data and all(m.error is None for m in r.metrics_data))
    return {
        "wall_s": wall,
        "target_s": target_s,
        "evaluate_s": time.perf_counter() - evaluate_started,
        "cases": len(cases),
        "results": len(results),
        "scored": scored,
        "error": error,
    }


def run_serial(base_url: str, cases: list[dict[str, Any]], judge_kind: str) -> dict[str, Any]:
    from deepeval.metrics import AnswerRelevancyMetric
    from deepeval.test_case import LLMTestCase
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="bench", max_retries=3)
    model = judge(base_url, judge_kind)
    scored = 0
    started = time.perf_counter()
    for case in cases:
        completion = client.chat.completions.create(
            model=TARGET_MODEL, messages=[{"role": "user", "content": case["input"]}], max_tokens=64
        )
        test_case = LLMTestCase(input=case["input"], actual_output=completion.choices[0].message.content or "")
        metric = AnswerRelevancyMetric(model=model, threshold=0.5, async_mode=False)
        metric.measure(test_case, _show_indicator=False)
        scored += metric.score is not None
    wall = time.perf_counter() - started
    return {"wall_s": wall, "target_s": None, "evaluate_s": None, "cases": len(cases), "results": len(cases),
            "scored": scored, "error": None}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["defaults", "tuned", "serial"])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N cases")
    parser.add_argument("--judge", choices=["gptmodel", "gptmodel-shared", "custom"], default="gptmodel")
    args = parser.parse_args()
    apply_offline_environ()
    if args.mode == "tuned":
        os.environ["DEEPEVAL_DISABLE_TIMEOUTS"] = "1"
    guard = OutboundGuard()
    guard.install()
    cases = load_cases(args.dataset, args.limit)
    if args.mode == "serial":
        result = run_serial(args.base_url, cases, args.judge)
    else:
        result = run_evaluate(args.mode, args.base_url, cases, args.concurrency, args.judge)
    result["judge"] = args.judge
    result["blocked_outbound"] = guard.blocked
    sys.stdout.flush()
    print("\n" + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
