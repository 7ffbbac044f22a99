"""Suite metric specs → DeepEval metric objects, and one case scored by them.

DeepEval metrics keep per-measurement state (score, reason), so each case gets fresh instances; they are cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepeval.metrics import (
    AnswerRelevancyMetric,
    BaseMetric,
    ExactMatchMetric,
    FaithfulnessMetric,
    GEval,
    HallucinationMetric,
    JsonCorrectnessMetric,
    PatternMatchMetric,
)
from deepeval.models import DeepEvalBaseLLM
from deepeval.test_case import LLMTestCase, SingleTurnParams
from pydantic import BaseModel, create_model

from evaluator import suite as s

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


@dataclass(frozen=True)
class MetricOutcome:
    score: float | None
    threshold: float
    success: bool
    reason: str | None
    error: str | None
    error_kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "threshold": self.threshold,
            "success": self.success,
            "reason": self.reason,
            "error": self.error,
        }


def schema_model(name: str, schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model from a flat JSON Schema object, for DeepEval's JsonCorrectnessMetric."""
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for prop, definition in (schema.get("properties") or {}).items():
        python_type = _JSON_TYPES.get(str(definition.get("type", "string")), Any)
        fields[prop] = (python_type, ...) if prop in required else (python_type | None, None)
    return create_model(name, **fields)


class MetricFactory:
    """Builds the metric objects of one case."""

    def __init__(self, specs: list[s.MetricSpec], judge: DeepEvalBaseLLM) -> None:
        self.specs = specs
        self.judge = judge
        self._schemas = {
            spec.key: schema_model(f"Expected_{i}", spec.expected_schema)
            for i, spec in enumerate(specs)
            if isinstance(spec, s.JsonCorrectness)
        }

    def build(self, spec: s.MetricSpec) -> BaseMetric:
        if isinstance(spec, s.ExactMatch):
            return ExactMatchMetric(threshold=spec.threshold)
        if isinstance(spec, s.PatternMatch):
            return PatternMatchMetric(pattern=spec.pattern, ignore_case=spec.ignore_case, threshold=spec.threshold)
        if isinstance(spec, s.JsonCorrectness):
            return JsonCorrectnessMetric(
                expected_schema=self._schemas[spec.key],  # type: ignore[arg-type]
                model=self.judge,
                threshold=spec.threshold,
                include_reason=False,
                strict_mode=False,
            )
        if isinstance(spec, s.AnswerRelevancy):
            return AnswerRelevancyMetric(threshold=spec.threshold, model=self.judge, async_mode=True)
        if isinstance(spec, s.Faithfulness):
            return FaithfulnessMetric(threshold=spec.threshold, model=self.judge, async_mode=True)
        if isinstance(spec, s.Hallucination):
            return HallucinationMetric(threshold=spec.threshold, model=self.judge, async_mode=True)
        return GEval(
            name=spec.key,
            criteria=spec.criteria,
            evaluation_steps=spec.evaluation_steps,
            evaluation_params=[SingleTurnParams(p) for p in spec.evaluation_params],
            model=self.judge,
            threshold=spec.threshold,
            async_mode=True,
        )


async def score(metric: BaseMetric, spec: s.MetricSpec, test_case: LLMTestCase) -> MetricOutcome:
    """Runs one metric; an exception becomes an error outcome, never a lost case."""
    from evaluator.engine.http import CallError

    try:
        if spec.type in s.LLM_METRICS:
            await metric.a_measure(test_case, _show_indicator=False)
        else:
            metric.measure(test_case, _show_indicator=False)
    except CallError as exc:
        return MetricOutcome(None, spec.threshold, False, None, exc.message, exc.kind)
    except Exception as exc:  # DeepEval raises bare ValueErrors on judge output it cannot parse
        return MetricOutcome(None, spec.threshold, False, None, f"{type(exc).__name__}: {exc}", "metric")
    metric_error = getattr(metric, "error", None)
    if metric_error:
        return MetricOutcome(None, spec.threshold, False, None, str(metric_error), "metric")
    raw_score = metric.score
    return MetricOutcome(
        score=float(raw_score) if raw_score is not None else None,
        threshold=spec.threshold,
        success=bool(metric.is_successful()),
        reason=getattr(metric, "reason", None),
        error=None,
    )
