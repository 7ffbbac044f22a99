"""The metric registry's declarations are what each DeepEval metric itself declares.

The registry's `needs` are checked at load time (exit 2 before any call); DeepEval checks `_required_params` /
`_required_test_case_params` when it measures. If a DeepEval upgrade changes what a metric needs, whether it scores
conversations or whether it takes a judge, this test fails instead of a user's run failing case by case.
"""

from __future__ import annotations

import inspect

import pytest

from evaluator.metric_types import REGISTRY

BUILT_IN = {name: entry for name, entry in REGISTRY.items() if entry.deepeval}
DECLARED = sorted(name for name, entry in BUILT_IN.items() if entry.needs is not None)


def declared_by_deepeval(cls: type) -> set[str]:
    if hasattr(cls, "_required_test_case_params"):
        names = {p.value for p in cls._required_test_case_params}
        return names | ({"chatbot_role"} if cls._requires_chatbot_role else set())
    return {p.value for p in cls._required_params}


@pytest.mark.parametrize("metric_type", DECLARED)
def test_needs_equal_what_the_deepeval_metric_declares(metric_type: str) -> None:
    entry = REGISTRY[metric_type]
    assert set(entry.needs or ()) == declared_by_deepeval(entry.deepeval_class())


def test_only_g_eval_and_custom_declare_their_own_needs() -> None:
    """G-Eval's needs are its `evaluation_params`; a custom metric's are its class's, read at load time."""
    assert set(REGISTRY) - set(DECLARED) == {"g_eval", "conversational_g_eval", "custom"}
    assert set(BUILT_IN) == set(REGISTRY) - {"custom"}


def test_conversational_flags_match_deepeval_base_classes() -> None:
    from deepeval.metrics import BaseConversationalMetric

    conversational = {t for t, e in BUILT_IN.items() if issubclass(e.deepeval_class(), BaseConversationalMetric)}
    assert conversational == {t for t, e in REGISTRY.items() if e.conversational}


def test_judge_flags_match_the_constructors_that_take_a_model() -> None:
    """Deterministic metrics (exact/pattern match) take no model; json_correctness and tool_correctness take one
    but only call it with include_reason / available_tools, which the evaluator sets off / only on request."""
    takes_model = {
        t for t, e in BUILT_IN.items() if "model" in inspect.signature(e.deepeval_class().__init__).parameters
    }
    assert takes_model - {"json_correctness", "tool_correctness"} == {t for t, e in REGISTRY.items() if e.judge}
