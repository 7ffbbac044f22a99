"""Datasets shared by the metric tests: one single-turn case and one recorded conversation carrying every field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

ANSWER = "Paris is the capital of France."
TOOLS = [{"name": "search", "input_parameters": {"query": "capital of France"}}]


def single_turn_case(case_id: str = "single", **changes: Any) -> dict[str, Any]:
    return {
        "id": case_id,
        "input": f"Answer with exactly: {ANSWER}",
        "expected_output": ANSWER,
        "context": [ANSWER],
        "retrieval_context": [ANSWER],
        "tools_called": TOOLS,
        "expected_tools": TOOLS,
        **changes,
    }


def conversation_case(case_id: str = "conversation", **changes: Any) -> dict[str, Any]:
    return {
        "id": case_id,
        "scenario": "A student asks about the capital of France.",
        "expected_outcome": "The student learns that Paris is the capital.",
        "chatbot_role": "a patient geography tutor",
        "turns": [
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": ANSWER, "retrieval_context": [ANSWER]},
            {"role": "user", "content": "Thank you!"},
            {"role": "assistant", "content": "You are welcome."},
        ],
        **changes,
    }


@pytest.fixture(scope="module")
def module_stub() -> Iterator[str]:
    """One stub server process per test module: starting one costs about a second, and these tests only read
    results, never the server's counters."""
    from openai_stub.server import stub_process

    with stub_process(latency=0.005) as base_url:
        yield base_url
