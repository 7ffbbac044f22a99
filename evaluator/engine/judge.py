"""DeepEval's judge, backed by our shared client: schema-constrained JSON, retries, per-case call records.

DeepEval's own `LocalModel` builds a new client per call, ignores Retry-After and does not retry custom models;
this judge reuses the endpoint's keep-alive session and adaptive limit, and retries like every other call.

G-Eval's score (DeepEval 4.3, `metrics/utils/decision.py: a_generate_rubric_score`) asks the judge for a raw
response with `top_logprobs` and weights the 0-10 score by the probabilities of the score's token
(`g_eval/utils.py: calculate_weighted_summed_score`); a judge without `a_generate_raw_response`, or one that raises
AttributeError from it, gets a second, plain call and a whole-number score instead. This judge serves raw
responses where the server returns logprobs (vLLM, OpenAI), remembers a server that refuses them (it is asked
plainly from then on), and notes for each metric which score it got (`scoring_notes`, read by engine/metrics.py).

Refusals seen: vLLM answers 400 above its `--max-logprobs` ("... greater than max allowed: N": asked again with N);
llama-cpp-python's server answers 500 "logprobs is not supported for models created with logits_all=False" (not
retried: a 5xx naming logprobs is an answer, not an outage). Until the first raw call has come back, the others
wait for it, so a server that refuses is asked once, not once per case in flight.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from deepeval.metrics.g_eval.schema import ReasonScore
from deepeval.metrics.g_eval.utils import calculate_weighted_summed_score
from deepeval.models import DeepEvalBaseLLM
from pydantic import BaseModel, ValidationError

from evaluator.engine.http import CallError, ChatClient
from evaluator.suite import Judge

# How a G-Eval score was computed (recorded per case and metric, `MetricResult.scoring`):
Scoring = Literal["weighted", "integer_refused", "integer_absent", "integer_unmatched"]
WEIGHTED: Final = "weighted"  # weighted by the judge's token probabilities (G-Eval as published)
REFUSED: Final = "integer_refused"  # the server refused `logprobs`: DeepEval asked again without them
ABSENT: Final = "integer_absent"  # the server answered without logprobs
UNMATCHED: Final = "integer_unmatched"  # logprobs came back, but none for the score's token
MAX_TOP_LOGPROBS: Final = 20  # OpenAI's cap, and vLLM's default --max-logprobs
_REFUSAL_STATUS = frozenset({400, 422})
_MAX_ALLOWED = re.compile(rb"max(?:imum)? allowed:? (\d+)")


def refuses_logprobs(status: int, body: bytes) -> bool:
    """A server's answer to a request with `logprobs` that says it will not serve them: any 400/422 (the request as
    such is refused), or a 5xx whose message names logprobs (llama-cpp-python's 500)."""
    return status in _REFUSAL_STATUS or (status >= 500 and b"logprob" in body.lower())


# The scoring notes of the metric being measured in the current task (engine/metrics.py sets a fresh list per
# metric: each metric of a case is its own task, so the notes never mix).
scoring_notes: contextvars.ContextVar[list[Scoring] | None] = contextvars.ContextVar("scoring_notes", default=None)


def _note(scoring: Scoring) -> None:
    notes = scoring_notes.get()
    if notes is not None:
        notes.append(scoring)


# --- the raw response, as DeepEval reads an OpenAI ChatCompletion (attribute access only) -------------------
@dataclass(frozen=True, slots=True)
class TopLogprob:
    token: str
    logprob: float


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    top_logprobs: list[TopLogprob]


@dataclass(frozen=True, slots=True)
class ChoiceLogprobs:
    content: list[TokenLogprob] | None


@dataclass(frozen=True, slots=True)
class RawMessage:
    content: str


@dataclass(frozen=True, slots=True)
class RawChoice:
    message: RawMessage
    logprobs: ChoiceLogprobs | None


@dataclass(frozen=True, slots=True)
class RawCompletion:
    """The parts of `openai.types.chat.ChatCompletion` that G-Eval reads."""

    choices: list[RawChoice]


def parse_logprobs(value: Any) -> ChoiceLogprobs | None:
    """`choices[0].logprobs` as vLLM and OpenAI send it; None when absent or not in that shape."""
    if not isinstance(value, dict) or not isinstance(value.get("content"), list):
        return None
    content = []
    for item in value["content"]:
        if not isinstance(item, dict):
            return None
        token, logprob = item.get("token"), _number(item.get("logprob"))
        tops = item.get("top_logprobs") or []
        if not isinstance(token, str) or logprob is None or not isinstance(tops, list):
            return None
        alternatives = []
        for top in tops:
            top_logprob = _number(top.get("logprob")) if isinstance(top, dict) else None
            if top_logprob is None or not isinstance(top.get("token"), str):
                return None
            alternatives.append(TopLogprob(top["token"], top_logprob))
        content.append(TokenLogprob(token, logprob, alternatives))
    return ChoiceLogprobs(content)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def scoring_of(text: str, completion: RawCompletion) -> Scoring:
    """What G-Eval will make of this answer: DeepEval's own weighting function on it, as `_score_from_raw_response`
    calls it (an exception there means DeepEval keeps the whole-number score)."""
    choice = completion.choices[0]
    if choice.logprobs is None or not choice.logprobs.content:
        return ABSENT
    start, end = text.find("{"), text.rfind("}")
    try:
        score = json.loads(text[start : end + 1])["score"]  # as DeepEval's trimAndLoadJson reads it
        calculate_weighted_summed_score(score, completion)  # type: ignore[arg-type]
    except (KeyError, AttributeError, TypeError, ValueError):
        return UNMATCHED  # no score, or no probabilities for its token: DeepEval keeps the whole number
    return WEIGHTED


class _JudgeCalls:
    """The implementation lives outside the DeepEvalBaseLLM subclass on purpose: DeepEval wraps methods
    defined on a subclass in tracing spans, which costs CPU on every call; we record calls ourselves."""

    client: ChatClient
    config: Judge

    def load_model(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def get_model_name(self, *args: Any, **kwargs: Any) -> str:
        return self.config.model

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the evaluator runs metrics asynchronously; use a_generate")

    # Set when the server refused a request with `logprobs`: G-Eval then asks plainly (see the module doc).
    logprobs_refused: str | None = None
    logprobs_known: bool = False  # whether a raw call has come back (served, omitted or refused)
    top_logprobs_allowed: int = MAX_TOP_LOGPROBS
    _first_raw_call: asyncio.Lock | None = None

    def _body(self, prompt: str, schema: type[BaseModel] | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
            **self.config.extra_body,
        }
        if self.config.seed is not None:
            body["seed"] = self.config.seed
        if schema is not None:
            body["response_format"] = response_format(self.config.structured_output, schema)
        return body

    async def a_generate(self, prompt: str, schema: type[BaseModel] | None = None, **_: Any) -> Any:
        result = await self.client.chat("judge", self._body(prompt, schema))
        if schema is None:
            return result.text
        return parse_structured(result.text, schema)

    async def a_generate_raw_response(
        self, prompt: str, top_logprobs: int = 5, **_: Any
    ) -> tuple[RawCompletion, float | None]:
        """G-Eval's scoring call with `logprobs`: the answer (constrained to G-Eval's `ReasonScore`, as its
        plain call is) and the probabilities of its tokens. Raises AttributeError, DeepEval's signal to fall back
        to a plain `a_generate`, when this server refused logprobs (now or before)."""
        if not self.logprobs_known:
            if self._first_raw_call is None:
                self._first_raw_call = asyncio.Lock()
            async with self._first_raw_call:  # the first call finds out; the others wait for its answer
                if not self.logprobs_known:
                    try:
                        return await self._raw_response(prompt, top_logprobs)
                    finally:
                        self.logprobs_known = True
        return await self._raw_response(prompt, top_logprobs)

    async def _raw_response(self, prompt: str, top_logprobs: int) -> tuple[RawCompletion, float | None]:
        if self.logprobs_refused is not None:
            _note(REFUSED)
            raise AttributeError(f"the judge server refused logprobs ({self.logprobs_refused})")
        body = self._body(prompt, ReasonScore)
        body["logprobs"] = True
        body["top_logprobs"] = max(0, min(top_logprobs, self.top_logprobs_allowed))
        try:
            result = await self.client.chat("judge", body, final=refuses_logprobs)
        except CallError as exc:
            status = exc.record.status if exc.record is not None else None
            if status is None or not refuses_logprobs(status, exc.message.encode()):
                raise
            allowed = _MAX_ALLOWED.search(exc.message.encode())
            if allowed is not None and 0 < int(allowed.group(1)) < body["top_logprobs"]:  # vLLM's --max-logprobs
                self.top_logprobs_allowed = int(allowed.group(1))
                return await self._raw_response(prompt, top_logprobs)
            self.logprobs_refused = exc.message
            _note(REFUSED)
            raise AttributeError(f"the judge server refused logprobs ({exc.message})") from None
        completion = RawCompletion([RawChoice(RawMessage(result.text), parse_logprobs(result.logprobs))])
        _note(scoring_of(result.text, completion))
        return completion, None


def response_format(mode: str, schema: type[BaseModel]) -> dict[str, Any] | None:
    """The `response_format` each server family understands."""
    json_schema = _schema_for(schema)
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": schema.__name__, "schema": json_schema}}
    if mode == "json_object":
        return {"type": "json_object", "schema": json_schema}
    return None


_SCHEMAS: dict[type[BaseModel], dict[str, Any]] = {}


def _schema_for(schema: type[BaseModel]) -> dict[str, Any]:
    cached = _SCHEMAS.get(schema)
    if cached is None:
        cached = _SCHEMAS[schema] = schema.model_json_schema()
    return cached


def parse_structured(text: str, schema: type[BaseModel]) -> Any:
    """A schema instance when the judge complied; else the raw text, which DeepEval parses (or rejects)."""
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end < start:
        return text
    try:
        return schema.model_validate(json.loads(text[start : end + 1], strict=False))
    except (ValueError, ValidationError):
        return text


class ChatJudge(_JudgeCalls, DeepEvalBaseLLM):  # type: ignore[no-untyped-call]
    """The judge model that every LLM-judged metric of a shard shares."""

    def __init__(self, client: ChatClient, config: Judge) -> None:
        self.client = client
        self.config = config
        super().__init__(config.model)


class NoJudge(DeepEvalBaseLLM):  # type: ignore[no-untyped-call]
    """Stands in where a suite has no judge; deterministic metrics never call it."""

    def __init__(self) -> None:
        super().__init__("no-judge")

    def load_model(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def get_model_name(self, *args: Any, **kwargs: Any) -> str:
        return "no-judge"

    def generate(self, *args: Any, **kwargs: Any) -> str:
        raise RuntimeError("this suite has no judge")

    async def a_generate(self, *args: Any, **kwargs: Any) -> str:
        raise RuntimeError("this suite has no judge")
