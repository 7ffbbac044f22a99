"""DeepEval's judge, backed by our shared client: schema-constrained JSON, retries, per-case call records.

DeepEval's own `LocalModel` builds a new client per call, ignores Retry-After and does not retry custom models;
this judge reuses the endpoint's keep-alive session and adaptive limit, and retries like every other call.
"""

from __future__ import annotations

import json
from typing import Any

from deepeval.models import DeepEvalBaseLLM
from pydantic import BaseModel, ValidationError

from evaluator.engine.http import ChatClient
from evaluator.suite import Judge


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

    async def a_generate(self, prompt: str, schema: type[BaseModel] | None = None, **_: Any) -> Any:
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
        result = await self.client.chat("judge", body)
        if schema is None:
            return result.text
        return parse_structured(result.text, schema)


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
