"""Suite metric specs → DeepEval metric objects, and one case scored by them.

DeepEval metrics keep per-measurement state (score, reason), so each case gets fresh instances; they are cheap.
Every LLM-judged metric gets the shard's one judge (`model=`) and `eval_mode="llm"`, so a `DEEPEVAL_EVAL_MODE`
in the environment cannot route a decision to a hosted service: nothing leaves the machine but judge calls.

G-Eval from `criteria` alone: the judge writes the evaluation steps once per RUN (`MetricFactory.prepare`, the
lock in engine/steps.py), before any case, and every case of every shard is scored with those same steps. They are
recorded in the run's results folder (`g_eval_steps.json`, with the judge's model and sampling settings), reused
when a shard resumes, and listed in every shard's manifest.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepeval.metrics import BaseConversationalMetric, BaseMetric, ConversationalGEval, GEval
from deepeval.models import DeepEvalBaseLLM

from evaluator import metric_types as mt
from evaluator import suite as s
from evaluator.engine import custom, threaded
from evaluator.engine.judge import ABSENT, REFUSED, UNMATCHED, WEIGHTED, Scoring, scoring_notes
from evaluator.engine.steps import SharedSteps
from evaluator.engine.testcase import TestCase
from evaluator.errors import InfrastructureError

AnyMetric = BaseMetric | BaseConversationalMetric


@dataclass(frozen=True)
class MetricOutcome:
    score: float | None
    threshold: float | None
    success: bool
    reason: str | None
    error: str | None
    error_kind: str | None = None
    scoring: Scoring | None = None  # how a G-Eval score was computed (engine/judge.py); None for other metrics


_PARAMETERS: dict[type[Any], frozenset[str]] = {}


def _accepts(cls: type[Any], parameter: str) -> bool:
    names = _PARAMETERS.get(cls)
    if names is None:
        names = _PARAMETERS[cls] = frozenset(inspect.signature(cls.__init__).parameters)
    return parameter in names


GEvalSpec = mt.GEval | mt.ConversationalGEval


class MetricFactory:
    """Builds the metric objects of one case."""

    def __init__(self, specs: list[s.MetricSpec], judge: DeepEvalBaseLLM) -> None:
        self.specs = specs
        self.judge = judge
        self._classes: dict[str, type[AnyMetric]] = {}  # custom metric classes, imported on first use
        self.generated_steps: dict[str, list[str]] = {}

    # --- G-Eval steps from criteria ------------------------------------------------------------------------
    def criteria_only(self) -> list[GEvalSpec]:
        return [sp for sp in self.specs if isinstance(sp, GEvalSpec) and not sp.evaluation_steps]

    async def prepare(
        self, run_folder: Path, *, run_id: str, suite_hash: str, wait_s: float = 1800.0
    ) -> dict[str, list[str]]:
        """Steps of every criteria-only G-Eval, written once per RUN into `run_folder/g_eval_steps.json` (by
        whichever shard gets there first, under a lock; see engine/steps.py) and read by every other shard.
        Returns the steps each G-Eval metric of the suite uses, fixed ones included (for the manifest)."""
        from evaluator.engine.http import CallError

        pending = {spec.key: spec for spec in self.criteria_only()}

        async def generate(key: str) -> list[str]:
            spec = pending[key]
            try:
                return await self._generate_steps(spec)
            except CallError as exc:
                raise InfrastructureError(
                    f"G-Eval '{spec.key}': the judge could not write evaluation steps from the criteria ({exc.message})"
                ) from None
            except Exception as exc:  # DeepEval raises ValueError on output it cannot parse
                raise InfrastructureError(
                    f"G-Eval '{spec.key}': the judge's evaluation steps were unusable ({type(exc).__name__}: {exc})"
                ) from None

        if pending:
            shared = SharedSteps(
                run_folder, run_id=run_id, suite_hash=suite_hash, judge=judge_settings(self.judge), wait_s=wait_s
            )
            definitions = {key: _definition(spec) for key, spec in pending.items()}
            self.generated_steps = await shared.obtain(definitions, generate)
        return {
            spec.key: list(spec.evaluation_steps or self.generated_steps[spec.key])
            for spec in self.specs
            if isinstance(spec, GEvalSpec)
        }

    async def _generate_steps(self, spec: GEvalSpec) -> list[str]:
        metric = self._construct(spec, evaluation_steps=None)
        # DeepEval's own step generation (prompt, schema, parsing); it is what `a_measure` would run per case. No
        # public method writes the steps alone, so this private one stays, and pyproject.toml pins DeepEval's minor
        # version (tests/contract/test_dependency_pins.py holds this).
        if isinstance(metric, GEval):
            steps = await metric._a_generate_evaluation_steps(False)
        elif isinstance(metric, ConversationalGEval):
            steps = await metric._a_generate_evaluation_steps()
        else:
            raise TypeError(f"{type(metric).__name__} is no G-Eval")
        if not isinstance(steps, list) or not steps or not all(isinstance(step, str) for step in steps):
            raise ValueError(f"expected a non-empty list of steps, got {steps!r}")
        return steps

    # --- building -------------------------------------------------------------------------------------------
    def build(self, spec: s.MetricSpec) -> AnyMetric:
        """A fresh metric; one that cannot be built becomes a metric that fails when measured (an error outcome
        of this case, like any other metric failure, not a crashed shard)."""
        try:
            return self._build(spec)
        except Exception as exc:
            return _Unbuildable(exc)

    def _build(self, spec: s.MetricSpec) -> AnyMetric:
        if isinstance(spec, s.Custom):
            cls = self._classes.get(spec.key)
            if cls is None:
                cls = self._classes[spec.key] = custom.resolve_class(spec)
            return custom.instantiate(cls, spec, self.judge)
        if isinstance(spec, GEvalSpec):
            steps = spec.evaluation_steps or self.generated_steps.get(spec.key)
            if not steps:
                raise RuntimeError(f"G-Eval '{spec.key}' has no steps: MetricFactory.prepare() must run first")
            return self._construct(spec, evaluation_steps=steps)
        return self._construct(spec)

    def _construct(self, spec: s.MetricSpec, **extra: Any) -> AnyMetric:
        """The registered DeepEval class with the spec's options, the judge (where it takes one), DeepEval's async
        path unless the registry says the metric is sync-only, and `eval_mode="llm"` (see the module docstring)."""
        registered = spec.registered
        cls = registered.deepeval_class()
        kwargs: dict[str, Any] = {"threshold": spec.threshold, **spec.deepeval_options(), **extra}
        if _accepts(cls, "model"):
            kwargs["model"] = threaded.bind_judge(self.judge) if registered.sync_only else self.judge
        if _accepts(cls, "async_mode"):
            kwargs["async_mode"] = not registered.sync_only
        if _accepts(cls, "eval_mode"):
            kwargs["eval_mode"] = "llm"
        metric: AnyMetric = cls(**kwargs)
        return metric


class _Unbuildable(BaseMetric):  # type: ignore[no-untyped-call]
    """Stands in for a metric whose constructor raised: measuring it raises that error."""

    def __init__(self, error: Exception) -> None:
        self.build_error = error
        self.threshold = None

    def measure(self, *args: Any, **kwargs: Any) -> float:
        raise self.build_error

    async def a_measure(self, *args: Any, **kwargs: Any) -> float:
        raise self.build_error

    def is_successful(self) -> bool:
        return False


def _definition(spec: GEvalSpec) -> dict[str, Any]:
    """What the generated steps depend on: a change of any of these asks the judge again."""
    return {"type": spec.type, "criteria": spec.criteria, "evaluation_params": list(spec.evaluation_params)}


def judge_settings(judge: DeepEvalBaseLLM) -> dict[str, Any]:
    """The judge's model and sampling settings, so two runs' steps can be compared (no URL, no key)."""
    config = getattr(judge, "config", None)
    if config is None:
        return {"model": judge.get_model_name()}
    return {
        "model": config.model,
        "temperature": config.temperature,
        "seed": config.seed,
        "max_tokens": config.max_tokens,
        "structured_output": getattr(config, "structured_output", None),
    }


async def score(metric: AnyMetric, spec: s.MetricSpec, test_case: TestCase) -> MetricOutcome:
    """Runs one metric; an exception becomes an error outcome, never a lost case."""
    from evaluator.engine.http import CallError

    threshold = _threshold(metric, spec)
    notes: list[Scoring] = []
    token = scoring_notes.set(notes)
    try:
        test_case = spec.with_defaults(test_case)
        if isinstance(spec, s.Custom):
            await custom.measure(metric, test_case)
        elif spec.registered.sync_only:
            await threaded.measure_in_thread(metric, test_case)
        else:
            built_in: Any = metric  # the factory paired it with the right kind of test case (checked at load time)
            await built_in.a_measure(test_case, _show_indicator=False)
    except CallError as exc:
        return MetricOutcome(None, threshold, False, None, exc.message, exc.kind)
    except Exception as exc:  # DeepEval raises bare ValueErrors on judge output it cannot parse
        return MetricOutcome(None, threshold, False, None, f"{type(exc).__name__}: {exc}", "metric")
    finally:
        scoring_notes.reset(token)
    scoring = _scoring(notes)
    metric_error = getattr(metric, "error", None)
    if metric_error:
        return MetricOutcome(None, threshold, False, None, str(metric_error), "metric")
    raw_score = metric.score
    if raw_score is None and isinstance(spec, s.Custom):
        return MetricOutcome(None, threshold, False, None, "the metric set no score", "metric")
    if raw_score is not None and not math.isfinite(float(raw_score)):  # a mean or an interval over it is no number
        return MetricOutcome(None, threshold, False, None, f"score {raw_score} is not a number", "metric")
    if raw_score is not None and not isinstance(spec, s.Custom) and not 0.0 <= float(raw_score) <= 1.0:
        message = f"score {raw_score} is outside 0..1 (the judge did not answer on the metric's scale)"
        return MetricOutcome(None, threshold, False, None, message, "metric")
    return MetricOutcome(
        score=float(raw_score) if raw_score is not None else None,
        threshold=threshold,
        success=bool(metric.is_successful()),
        reason=getattr(metric, "reason", None),
        error=None,
        scoring=scoring,
    )


def _scoring(notes: list[Scoring]) -> Scoring | None:
    """One metric's scoring: the worst of its rubric-score calls (a G-Eval makes one per case)."""
    for kind in (REFUSED, ABSENT, UNMATCHED, WEIGHTED):
        if kind in notes:
            return kind
    return None


def _threshold(metric: AnyMetric, spec: s.MetricSpec) -> float | None:
    if isinstance(spec, s.Custom):
        value = getattr(metric, "threshold", None)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else spec.threshold
    return spec.threshold
