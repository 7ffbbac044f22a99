"""A local OpenAI-compatible server with controllable latency and faults, for volume/fault tests and bench/.

It stands in for an inference server (vLLM, llama.cpp) where the real one cannot produce the load or the
failures a test needs. It binds 127.0.0.1 only. Behaviour is set by `Controls` (constructor, CLI flags, or at
runtime by `POST /_control`) and is reproducible: whether a call fails is drawn from a hash of (seed, request
body, how many times that body was seen), so a retry of the same request gets a fresh draw and the same run
gives the same faults whatever the order of concurrent calls. Only the concurrency ceiling depends on timing.

Endpoints: `GET /health`, `GET /v1/models`, `POST /v1/chat/completions` (non-streaming), `GET /_stats`,
`GET|POST /_control`, `POST /_reset`. `/v1/models` answers as vLLM's does (`ModelList` of `ModelCard`s in
vllm/entrypoints/openai/protocol.py: `id`, `object`, `created`, `owned_by`, `root` (the path or repository the
server loaded), `parent`, `max_model_len`, `permission`); the `root` and `max_model_len` controls set the two.

Answers: with `response_format` `{"type": "json_object", "schema": S}` or
`{"type": "json_schema", "json_schema": {"schema": S}}` the content is a small JSON document valid against S
(see `schema_instance`; a message containing `stub-verdict: no` makes a judge look unsatisfied); otherwise the
text after `Answer with exactly:` in the last user message, or the fixed `answer`.

Planted quality (`quality`, e.g. `ref=0.85,cand=0.65`): a text answer of a listed model is bad when the question's
draw `quality_draw(seed, last user message)` is at or above the model's quality; a bad answer carries
`stub-verdict: no` (so a judge reading it is unsatisfied) and differs from the good one (so exact match fails).
The draw depends on the question only, not on the model, so a worse model fails a superset of the cases a better
one fails: the difference between two models is known exactly (`planted_difference`), which is what the
statistical gate's tests need.

Logprobs (`logprobs`, `max_logprobs`, `score_logprobs`), as vLLM serves them (vllm-project/vllm 0052bed,
`vllm/entrypoints/openai/protocol.py`: `ChatCompletionRequest.check_logprobs`, `ChatCompletionLogProbsContent`;
the same shape as OpenAI's): a request with `"logprobs": true` gets `choices[0].logprobs.content`, one entry per
token of the answer (`token`, `logprob`, `bytes`, and `top_logprobs`: at most `top_logprobs` alternatives).
Refused like vLLM: `top_logprobs` below 0, `top_logprobs` without `logprobs`, more than `max_logprobs` (vLLM's
`--max-logprobs`, default 20; OpenAI's cap is 20 too). The stub's tokens: runs of letters, runs of up to three
digits (as GPT tokenizers split numbers), single other characters. Every token is certain (logprob 0) except the
score of a G-Eval answer (a JSON object with a `score`) when `score_logprobs` plants a distribution, e.g.
`7=0.6,8=0.3,6=0.1`: the answer's score is the most likely value and its token's `top_logprobs` list the
distribution. `logprobs=omit` answers such requests with `"logprobs": null` (a server that ignores the parameter);
`logprobs=refuse` answers them 400 (a server or model without logprobs); `logprobs=error` answers them 500 with
llama-cpp-python's message (0.3.36, `llama.py: Llama._create_completion`, a model loaded with `logits_all=False`,
as the built-in model's server is), as a judge must expect from any of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from openai_stub.schema_instance import SchemaError, instance_for

HOST = "127.0.0.1"
_REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ANSWER = "The stub model answers: ok."
_EXACT = re.compile(r"Answer with exactly:[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_VERDICT = re.compile(r"stub-verdict:\s*([A-Za-z]+)")
_SCHEMA_CACHE_MAX = 4096
_U64 = float(2**64)


@dataclasses.dataclass
class Controls:
    """What the server does; every field can be changed at runtime through `POST /_control`."""

    latency: float = 0.0  # seconds added to every admitted call
    jitter: float = 0.0  # extra latency, uniform in [0, jitter), drawn deterministically
    rate_429: float = 0.0  # fraction of admitted calls answered 429 with Retry-After (immediately)
    retry_after: float = 1.0  # seconds put in Retry-After (429 faults and the ceiling)
    rate_500: float = 0.0  # fraction answered 500 (after the latency)
    rate_hang: float = 0.0  # fraction that sleep `hang_seconds` before answering (past any sane timeout)
    hang_seconds: float = 3600.0
    max_concurrency: int = 0  # calls in flight above this get 429 at once; 0 = no ceiling
    rate_limit: float = 0.0  # token bucket: requests per second accepted (a hosted API's limit); 0 = none
    rate_burst: float = 0.0  # the bucket's size in requests; 0 = one second's worth (at least 1)
    seed: int = 0
    answer: str = DEFAULT_ANSWER  # default text answer
    model: str = "stub-model"  # listed by /v1/models
    root: str = ""  # /v1/models `root` (vLLM: the --model path or repository loaded); "" = the model id
    max_model_len: int = 0  # /v1/models `max_model_len`; 0 = not reported (null)
    api_key: str | None = None  # when set, require `Authorization: Bearer K` for K in this comma-separated set
    quality: str = ""  # planted answer quality per model: "model=0.9,other=0.7" (unlisted models always answer well)
    logprobs: str = "serve"  # serve (vLLM, OpenAI), omit ("logprobs": null), refuse (400), error (500, llama-cpp)
    max_logprobs: int = 20  # vLLM's --max-logprobs: more top_logprobs than this are refused
    score_logprobs: str = ""  # planted distribution of a G-Eval score's token: "7=0.6,8=0.3,6=0.1"

    def qualities(self) -> dict[str, float]:
        """`quality` parsed: model -> share of questions answered well."""
        return parse_quality(self.quality)

    def score_distribution(self) -> dict[int, float]:
        """`score_logprobs` parsed: score -> probability (empty: the score's token is certain)."""
        return parse_score_logprobs(self.score_logprobs)

    def accepted_keys(self) -> list[str]:
        """The keys a call may present, in the order given (a call's key is recorded as `key-<position>`)."""
        return [key for key in (self.api_key or "").split(",") if key]

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply `changes` after validating all of them; a bad one raises ValueError naming the field."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        staged = dataclasses.asdict(self)
        for name, value in changes.items():
            if name not in fields:
                raise ValueError(f"unknown control {name!r} (known: {', '.join(sorted(fields))})")
            staged[name] = _coerce(name, value, staged[name])
        _validate(staged)
        for name, value in staged.items():
            setattr(self, name, value)


def _coerce(name: str, value: Any, current: Any) -> Any:
    if name == "api_key":
        if value is None or isinstance(value, str):
            return value
        raise ValueError(f"control {name!r} must be a string or null")
    if name in ("answer", "model", "root"):
        if isinstance(value, str):
            return value
        raise ValueError(f"control {name!r} must be a string")
    if name == "logprobs":
        if value in LOGPROBS_MODES:
            return value
        raise ValueError(f"control 'logprobs' must be one of {', '.join(LOGPROBS_MODES)}, got {value!r}")
    if name == "score_logprobs":
        if isinstance(value, str):
            parse_score_logprobs(value)
            return value
        raise ValueError(f"control {name!r} must be a string like '7=0.6,8=0.3,6=0.1'")
    if name == "quality":
        if isinstance(value, str):
            parse_quality(value)
            return value
        raise ValueError(f"control {name!r} must be a string like 'model=0.9,other=0.7'")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"control {name!r} must be a number, got {value!r}")
    if isinstance(current, int):
        if float(value) != int(value):
            raise ValueError(f"control {name!r} must be an integer, got {value!r}")
        return int(value)
    return float(value)


def parse_quality(spec: str) -> dict[str, float]:
    """'model=0.9,other=0.7' -> {'model': 0.9, 'other': 0.7}; ValueError naming the bad entry."""
    out: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        model, sep, value = entry.rpartition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or not model or not 0.0 <= share <= 1.0:
            raise ValueError(f"control 'quality': {entry!r} must be MODEL=SHARE with SHARE within [0, 1]")
        out[model] = share
    return out


LOGPROBS_MODES = ("serve", "omit", "refuse", "error")
LLAMA_CPP_REFUSAL = "logprobs is not supported for models created with logits_all=False"


def parse_score_logprobs(spec: str) -> dict[int, float]:
    """'7=0.6,8=0.3,6=0.1' -> {7: 0.6, 8: 0.3, 6: 0.1}; ValueError naming the bad entry. The probabilities must
    sum to at most 1 (the rest is the unlisted tokens' share)."""
    out: dict[int, float] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        score, sep, value = entry.partition("=")
        try:
            number, share = int(score), float(value)
        except ValueError:
            number, share = -1, -1.0
        if not sep or not 0 <= number <= 999 or not 0.0 < share <= 1.0 or number in out:
            raise ValueError(
                f"control 'score_logprobs': {entry!r} must be SCORE=PROBABILITY, a score 0..999 listed once and a "
                f"probability within (0, 1]"
            )
        out[number] = share
    if sum(out.values()) > 1.0 + 1e-9:
        raise ValueError("control 'score_logprobs': the probabilities sum to more than 1")
    return out


def quality_draw(seed: int, question: str) -> float:
    """The question's uniform draw in [0, 1): a model of quality q answers it well when the draw is below q."""
    digest = hashlib.blake2b(question.encode(), digest_size=8, key=f"quality:{seed}".encode()).digest()
    return int.from_bytes(digest, "little") / _U64


def planted_difference(seed: int, questions: Sequence[str], reference: float, candidate: float) -> float:
    """The exact share of `questions` a candidate of quality `candidate` answers well minus the reference's."""
    draws = [quality_draw(seed, q) for q in questions]
    return (sum(d < candidate for d in draws) - sum(d < reference for d in draws)) / len(draws)


BAD_ANSWER_MARK = " (stub-verdict: no)"


def _validate(values: Mapping[str, Any]) -> None:
    names = ("latency", "jitter", "retry_after", "hang_seconds", "max_concurrency", "rate_limit", "rate_burst",
             "max_logprobs", "max_model_len")  # fmt: skip
    for name in names:
        if values[name] < 0:
            raise ValueError(f"control {name!r} must be >= 0, got {values[name]!r}")
    rates = ("rate_429", "rate_500", "rate_hang")
    for name in rates:
        if not 0.0 <= values[name] <= 1.0:
            raise ValueError(f"control {name!r} must be within [0, 1], got {values[name]!r}")
    if sum(values[name] for name in rates) > 1.0 + 1e-9:
        raise ValueError("controls rate_429 + rate_500 + rate_hang must not exceed 1")


@dataclasses.dataclass
class Stats:
    """Counters of chat-completion calls (health/models/control calls are not counted)."""

    total: int = 0
    by_status: Counter[str] = dataclasses.field(default_factory=Counter)
    by_model: Counter[str] = dataclasses.field(default_factory=Counter)
    # rate_limited, server_error, hang (injected by rate), ceiling (over max_concurrency), rate_limit (token bucket)
    faults: Counter[str] = dataclasses.field(default_factory=Counter)
    cancelled: int = 0  # handlers cancelled because the client went away (e.g. its timeout)
    # model -> which credential its calls presented: key-<i> (the i-th accepted key), none, or unknown.
    # Labels, never the keys: a test can tell which endpoint's key reached the server without echoing secrets.
    keys_by_model: dict[str, Counter[str]] = dataclasses.field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_status": dict(self.by_status),
            "by_model": dict(self.by_model),
            "faults": dict(self.faults),
            "cancelled": self.cancelled,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "keys_by_model": {model: dict(labels) for model, labels in self.keys_by_model.items()},
        }


def _error(status: int, message: str, kind: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def _text_of(content: Any) -> str:
    """Text of a message's content: a string or OpenAI's list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class StubServer:
    """The aiohttp application plus its state; `start()`/`stop()` run it on the current event loop."""

    def __init__(self, controls: Controls | None = None, **changes: Any) -> None:
        self.controls = controls or Controls()
        self.controls.update(changes)
        self.stats = Stats()
        self._attempts: dict[bytes, int] = {}
        self._schema_cache: dict[tuple[str, str, str], tuple[str, int]] = {}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._tokens: float | None = None  # the rate-limit bucket, filled on first use
        self._tokens_at = 0.0

    # -- lifecycle -------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/_stats", self._stats)
        app.router.add_get("/_control", self._get_control)
        app.router.add_post("/_control", self._post_control)
        app.router.add_post("/_reset", self._reset)
        return app

    async def start(self, port: int = 0) -> str:
        """Bind 127.0.0.1:`port` (0 = any free port) and return the OpenAI base URL (`.../v1`)."""
        # handler_cancellation: a client that gives up (timeout) frees its slot, as with a real server.
        runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, HOST, port, shutdown_timeout=0.5, backlog=1024)
        await site.start()
        self.port = int(runner.addresses[0][1])  # the port the OS chose when asked for 0
        self._runner = runner
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    # -- control endpoints -------------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _models(self, request: web.Request) -> web.Response:
        controls = self.controls
        model = {
            "id": controls.model, "object": "model", "created": 0, "owned_by": "stub",
            "root": controls.root or controls.model, "parent": None,
            "max_model_len": controls.max_model_len or None, "permission": [],
        }  # fmt: skip
        return web.json_response({"object": "list", "data": [model]})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_json())

    async def _get_control(self, request: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(self.controls))

    async def _post_control(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("body must be a JSON object of control values")
            self.controls.update(changes)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return _error(400, str(exc), "invalid_request_error")
        return web.json_response(dataclasses.asdict(self.controls))

    async def _reset(self, request: web.Request) -> web.Response:
        """Zero the counters and forget attempt history (the next run starts a fresh fault sequence)."""
        in_flight = self.stats.in_flight
        self.stats = Stats(in_flight=in_flight, max_in_flight=in_flight)
        self._attempts.clear()
        return web.json_response(self.stats.as_json())

    # -- chat completions ----------------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.Response:
        # Always through self.stats (never a local alias): POST /_reset may swap it while calls are in flight.
        self.stats.total += 1
        body = await request.read()
        controls = self.controls
        if controls.rate_limit and (wait := self._take_token(controls)) is not None:
            self.stats.faults["rate_limit"] += 1
            return self._count(self._over_rate(wait))
        if controls.max_concurrency and self.stats.in_flight >= controls.max_concurrency:
            self.stats.faults["ceiling"] += 1
            return self._count(self._rate_limited("server is at its concurrency limit"))
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        try:
            return self._count(await self._admitted(request, body, controls))
        except asyncio.CancelledError:
            self.stats.cancelled += 1
            raise
        finally:
            self.stats.in_flight -= 1

    def _count(self, response: web.Response) -> web.Response:
        self.stats.by_status[str(response.status)] += 1
        return response

    def _take_token(self, controls: Controls) -> float | None:
        """Token bucket: None when a token was taken, else the seconds until the next one."""
        now = time.monotonic()
        size = controls.rate_burst or max(1.0, controls.rate_limit)
        if self._tokens is None:
            self._tokens = size
        else:
            self._tokens = min(size, self._tokens + (now - self._tokens_at) * controls.rate_limit)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / controls.rate_limit

    def _over_rate(self, wait: float) -> web.Response:
        """429 as hosted APIs send it: Retry-After in whole seconds, retry-after-ms precise."""
        headers = {"Retry-After": str(max(1, math.ceil(wait))), "retry-after-ms": str(max(1, math.ceil(wait * 1000)))}
        return _error(429, "rate limit reached for requests (stub token bucket)", "rate_limit_exceeded", headers)

    def _rate_limited(self, message: str) -> web.Response:
        headers = {"Retry-After": _format_seconds(self.controls.retry_after)}
        return _error(429, message, "rate_limit_exceeded", headers)

    def _key_label(self, request: web.Request, controls: Controls) -> str:
        """Which accepted key the call presented (key-<i>), `none`, or `unknown` (a key not in the set)."""
        header = request.headers.get("Authorization")
        if header is None:
            return "none"
        for position, key in enumerate(controls.accepted_keys()):
            if header == f"Bearer {key}":
                return f"key-{position}"
        return "unknown"

    async def _admitted(self, request: web.Request, body: bytes, controls: Controls) -> web.Response:
        try:
            payload: Any = json.loads(body)
        except ValueError as exc:
            payload = exc
        named = payload.get("model") if isinstance(payload, dict) else None
        label = self._key_label(request, controls)
        self.stats.keys_by_model.setdefault(named if isinstance(named, str) else "?", Counter())[label] += 1
        if controls.accepted_keys() and not label.startswith("key-"):
            return _error(401, "invalid API key", "invalid_api_key")
        try:
            if isinstance(payload, ValueError):
                raise payload
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            messages = payload["messages"]
            if not isinstance(messages, list) or not messages:
                raise ValueError("'messages' must be a non-empty list")
        except (ValueError, KeyError) as exc:
            return _error(400, f"invalid request: {exc}", "invalid_request_error")
        if payload.get("stream"):
            return _error(400, "the stub server does not stream", "invalid_request_error")
        refusal = _logprobs_refusal(payload, controls)
        if refusal is not None:
            return _error(400, refusal, "invalid_request_error")
        if payload.get("logprobs") is True and controls.logprobs == "error":  # llama-cpp-python's answer
            return _error(500, LLAMA_CPP_REFUSAL, "internal_server_error")
        model = str(payload.get("model", controls.model))
        self.stats.by_model[model] += 1

        fault, spread = self._draw(body, controls)
        if fault < controls.rate_429:
            self.stats.faults["rate_limited"] += 1
            return self._rate_limited("rate limited by the stub (injected fault)")
        delay = controls.latency + controls.jitter * spread
        if delay > 0:
            await asyncio.sleep(delay)
        if fault < controls.rate_429 + controls.rate_500:
            self.stats.faults["server_error"] += 1
            return _error(500, "internal error (injected fault)", "server_error")
        if fault < controls.rate_429 + controls.rate_500 + controls.rate_hang:
            self.stats.faults["hang"] += 1
            await asyncio.sleep(controls.hang_seconds)
        try:
            content, completion_tokens = self._content(payload, messages)
        except SchemaError as exc:
            return _error(400, f"response_format schema: {exc}", "invalid_request_error")
        prompt_tokens = sum(len(_text_of(m.get("content")).split()) for m in messages if isinstance(m, dict))
        logprobs = None
        if payload.get("logprobs") is True and controls.logprobs == "serve":
            logprobs = {"content": token_logprobs(content, int(payload.get("top_logprobs") or 0), controls)}
        return web.Response(
            text=json.dumps(
                {
                    "id": f"chatcmpl-stub-{self.stats.total}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "logprobs": logprobs,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                }
            ),
            content_type="application/json",
        )

    def _draw(self, body: bytes, controls: Controls) -> tuple[float, float]:
        """Two uniforms in [0, 1) from (seed, body, attempt number of this body): reproducible faults."""
        digest = hashlib.blake2b(body, digest_size=16, key=str(controls.seed).encode()).digest()
        attempt = self._attempts.get(digest, 0)
        self._attempts[digest] = attempt + 1
        mixed = hashlib.blake2b(digest + attempt.to_bytes(8, "little"), digest_size=16).digest()
        return int.from_bytes(mixed[:8], "little") / _U64, int.from_bytes(mixed[8:], "little") / _U64

    def _content(self, payload: Mapping[str, Any], messages: Sequence[Any]) -> tuple[str, int]:
        response_format = payload.get("response_format")
        schema = _requested_schema(response_format)
        if schema is None:
            answer = self._text_answer(messages)
            quality = self.controls.qualities().get(str(payload.get("model")))
            if quality is not None and quality_draw(self.controls.seed, _last_user(messages)) >= quality:
                answer += BAD_ANSWER_MARK
            wants_json = isinstance(response_format, dict) and response_format.get("type") != "text"
            if wants_json:  # JSON asked for, but no schema given
                answer = json.dumps({"answer": answer})
            return answer, len(answer.split())
        texts = [_text_of(m.get("content")) for m in messages if isinstance(m, dict)]
        match = None
        for text in texts:
            match = _VERDICT.search(text) or match
        verdict = match.group(1).lower() if match else "yes"
        planted = self.controls.score_distribution()
        key = (json.dumps(schema), verdict, self.controls.score_logprobs)
        cached = self._schema_cache.get(key)
        if cached is None:
            value = instance_for(schema, verdict)
            if planted and isinstance(value, dict) and "score" in value:
                value["score"] = max(planted, key=lambda score: (planted[score], -score))  # the likeliest
            document = json.dumps(value)
            cached = (document, len(document.split()))
            if len(self._schema_cache) >= _SCHEMA_CACHE_MAX:
                self._schema_cache.clear()
            self._schema_cache[key] = cached
        return cached

    def _text_answer(self, messages: Sequence[Any]) -> str:
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                match = _EXACT.search(_text_of(message.get("content")))
                if match:
                    return match.group(1)
                break
        return self.controls.answer


_TOKEN = re.compile(r"[A-Za-z]+|\d{1,3}|\s|[^A-Za-z\d\s]")


def _logprobs_refusal(payload: Mapping[str, Any], controls: Controls) -> str | None:
    """Why a request's logprobs parameters are refused (vLLM's `check_logprobs` and its engine's maximum), or None."""
    wanted, top = payload.get("logprobs"), payload.get("top_logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        return "`logprobs` must be a boolean"
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int):
            return "`top_logprobs` must be an integer"
        if top < 0:
            return "`top_logprobs` must be a positive value."
        if top > 0 and not wanted:
            return "when using `top_logprobs`, `logprobs` must be set to true."
        if top > controls.max_logprobs:
            return f"Requested sample logprobs of {top}, which is greater than max allowed: {controls.max_logprobs}"
    if wanted and controls.logprobs == "refuse":
        return "logprobs are not supported by this model (stub: logprobs=refuse)"
    return None


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def token_logprobs(content: str, top: int, controls: Controls) -> list[dict[str, Any]]:
    """`logprobs.content` of an answer: each token certain, except a planted G-Eval score (see the module doc)."""
    tokens = _TOKEN.findall(content)
    planted = controls.score_distribution()
    score_at = -1
    if planted:
        try:
            document = json.loads(content)
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("score"), int):
            wanted = str(document["score"])
            score_at = max((i for i, token in enumerate(tokens) if token == wanted), default=-1)  # the last one
    out = []
    for position, token in enumerate(tokens):
        if position == score_at:
            ranked = sorted(planted.items(), key=lambda item: (-item[1], item[0]))
            entry = _entry(token, math.log(planted[int(token)]))
            entry["top_logprobs"] = [_entry(str(score), math.log(share)) for score, share in ranked[:top]]
        else:
            entry = _entry(token, 0.0)
            entry["top_logprobs"] = [_entry(token, 0.0)][:top]
        out.append(entry)
    return out


def _last_user(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _requested_schema(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    schema: Any = None
    if kind == "json_object":
        schema = response_format.get("schema")
    elif kind == "json_schema":
        wrapper = response_format.get("json_schema")
        schema = wrapper.get("schema") if isinstance(wrapper, dict) else None
    return schema if isinstance(schema, dict) else None


# -- ways to run it ------------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def running_stub(**controls: Any) -> AsyncIterator[StubServer]:
    """Run a stub on the current loop for the duration of the block; yields the server (see `.base_url`)."""
    server = StubServer(**controls)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def run_stub_in_thread(**controls: Any) -> tuple[str, Callable[[], None]]:
    """Start a stub on its own loop in a daemon thread; return (base_url, stop)."""
    server = StubServer(**controls)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(server.stop())
            loop.close()

    thread = threading.Thread(target=serve, name="stub-server", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("stub server did not start within 30 s")
    if failure:
        raise RuntimeError(f"stub server failed to start: {failure[0]}") from failure[0]

    def stop() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)

    return server.base_url, stop


def run_stub_in_process(**controls: Any) -> tuple[str, Callable[[], None]]:
    """Start a stub as a separate Python process (own GIL, like a real server); return (base_url, stop)."""
    argv = [sys.executable, "-m", "openai_stub", "--port", "0"]
    Controls().update(controls)  # fail here, in the caller, on a bad control
    for name, value in controls.items():
        if value is None:
            continue
        argv += [f"--{name.replace('_', '-')}", str(value)]
    # The stub is test support beside the package, not installed: put its parent folder on the child's path.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(_REPO_ROOT), os.environ.get("PYTHONPATH"))))}
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("http://"):
        process.kill()
        process.wait()
        raise RuntimeError(f"stub server process did not report its URL (got {line!r})")

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    return line, stop


@contextlib.contextmanager
def stub_process(**controls: Any) -> Iterator[str]:
    """`run_stub_in_process` for a `with` block or a fixture: yields the base URL, stops the process after."""
    base_url, stop = run_stub_in_process(**controls)
    try:
        yield base_url
    finally:
        stop()


def _root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def get_stats(base_url: str) -> dict[str, Any]:
    """Counters of a running stub (blocking HTTP; for tests)."""
    with urllib.request.urlopen(f"{_root(base_url)}/_stats", timeout=10) as response:
        result: dict[str, Any] = json.load(response)
    return result


def set_controls(base_url: str, **changes: Any) -> dict[str, Any]:
    """Change a running stub's controls (blocking HTTP; for tests); returns the controls now in force."""
    request = urllib.request.Request(
        f"{_root(base_url)}/_control",
        data=json.dumps(changes).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.load(response)
    return result


def reset_stats(base_url: str) -> None:
    """Zero a running stub's counters and attempt history (blocking HTTP; for tests)."""
    request = urllib.request.Request(f"{_root(base_url)}/_reset", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


# -- command line ----------------------------------------------------------------------------------------
_HELP = {
    "latency": "seconds added to every admitted call",
    "jitter": "extra latency, uniform in [0, JITTER), drawn deterministically",
    "rate_429": "fraction of calls answered 429 with Retry-After, at once",
    "retry_after": "seconds sent in Retry-After (429 faults and the ceiling)",
    "rate_500": "fraction of calls answered 500, after the latency",
    "rate_hang": "fraction of calls that sleep --hang-seconds before answering",
    "hang_seconds": "how long a hanging call sleeps",
    "max_concurrency": "calls in flight above this get 429 at once (0 = no ceiling)",
    "rate_limit": "token bucket: requests per second accepted, 429 with Retry-After and retry-after-ms above (0 = off)",
    "rate_burst": "the token bucket's size in requests (0 = one second's worth)",
    "seed": "seed of the reproducible fault draws",
    "answer": "default text answer",
    "model": "model id listed by /v1/models",
    "root": "the model's `root` on /v1/models (vLLM: the path or repository it loaded; default: the model id)",
    "max_model_len": "the model's `max_model_len` on /v1/models (0 = null)",
    "api_key": "require 'Authorization: Bearer KEY' for KEY in this comma-separated set; /_stats counts "
    "which key (key-0, key-1, ...) each model's calls presented",
    "quality": "planted answer quality per model, 'MODEL=SHARE,...': a listed model answers a question badly "
    "(marked 'stub-verdict: no') when the question's draw is at or above SHARE",
    "logprobs": "what a request with logprobs gets: serve (vLLM/OpenAI format), omit (answered with null "
    "logprobs), refuse (400), error (500, as llama-cpp-python's server)",
    "max_logprobs": "largest top_logprobs accepted (vLLM's --max-logprobs)",
    "score_logprobs": "planted distribution of a G-Eval score's token, 'SCORE=P,...' (the answer's score is the "
    "likeliest)",
}


def _parser() -> argparse.ArgumentParser:
    defaults = Controls()
    parser = argparse.ArgumentParser(
        prog="python -m openai_stub",
        description="OpenAI-compatible stub server on 127.0.0.1 with controllable latency and faults. "
        "Prints its base URL on the first line of stdout, then serves until SIGINT/SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    for field in dataclasses.fields(Controls):
        default = getattr(defaults, field.name)
        kind: Callable[[str], Any] = str if isinstance(default, str) or field.name == "api_key" else type(default)
        flag = f"--{field.name.replace('_', '-')}"
        parser.add_argument(
            flag, dest=field.name, type=kind, default=default, help=f"{_HELP[field.name]} (%(default)s)"
        )
    return parser


async def _serve(port: int, controls: dict[str, Any]) -> None:
    server = StubServer(**controls)
    await server.start(port)
    print(server.base_url, flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, done.set)
    await done.wait()
    await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    port = args.pop("port")
    try:
        Controls().update(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(port, args))
    except OSError as exc:
        print(f"error: cannot bind {HOST}:{port}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
