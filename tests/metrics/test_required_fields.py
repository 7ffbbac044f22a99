"""The evaluator's required-field table is what each DeepEval metric itself declares.

`suite.REQUIRED_PARAMS` is checked at load time (exit 2 before any call); DeepEval checks `_required_params` /
`_required_test_case_params` when it measures. If a DeepEval upgrade changes what a metric needs, this test fails
instead of a user's run failing case by case.
"""

from __future__ import annotations

import pytest

from evaluator import suite as s
from evaluator.engine.metrics import METRIC_CLASSES


def declared_by_deepeval(cls: type) -> set[str]:
    if hasattr(cls, "_required_test_case_params"):
        names = {p.value for p in cls._required_test_case_params}
        return names | ({"chatbot_role"} if cls._requires_chatbot_role else set())
    return {p.value for p in cls._required_params}


@pytest.mark.parametrize("metric_type", sorted(s.REQUIRED_PARAMS))
def test_table_equals_what_the_deepeval_metric_declares(metric_type: str) -> None:
    assert set(s.REQUIRED_PARAMS[metric_type]) == declared_by_deepeval(METRIC_CLASSES[metric_type])


def test_every_metric_type_of_the_suite_is_in_the_table_or_declares_its_own() -> None:
    spec_types = {
        t for member in s.MetricSpec.__args__[0].__args__ for t in member.model_fields["type"].annotation.__args__
    }  # type: ignore[attr-defined]
    own_declarations = {"g_eval", "conversational_g_eval", "custom"}  # evaluation_params / the class itself
    assert spec_types - own_declarations == set(s.REQUIRED_PARAMS)
    assert set(METRIC_CLASSES) == spec_types - {"custom"}


def test_conversational_set_matches_deepeval_base_classes() -> None:
    from deepeval.metrics import BaseConversationalMetric

    conversational = {t for t, cls in METRIC_CLASSES.items() if issubclass(cls, BaseConversationalMetric)}
    assert conversational == set(s.CONVERSATIONAL_METRICS)


def test_judged_set_matches_the_constructors_that_take_a_model() -> None:
    """Deterministic metrics (exact/pattern match) take no model; json_correctness and tool_correctness take one
    but only call it with include_reason / available_tools, which the evaluator sets off / only on request."""
    import inspect

    takes_model = {t for t, cls in METRIC_CLASSES.items() if "model" in inspect.signature(cls.__init__).parameters}
    assert takes_model - {"json_correctness", "tool_correctness"} == set(s.LLM_METRICS)
