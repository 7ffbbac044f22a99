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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepeval.metrics import (
    AnswerRelevancyMetric,
    ArgumentCorrectnessMetric,
    BaseConversationalMetric,
    BaseMetric,
    BiasMetric,
    ContextualPrecisionMetric,
    ContextualRecallMetric,
    ContextualRelevancyMetric,
    ConversationalGEval,
    ConversationCompletenessMetric,
    ExactMatchMetric,
    FaithfulnessMetric,
    GEval,
    GoalAccuracyMetric,
    HallucinationMetric,
    JsonCorrectnessMetric,
    KnowledgeRetentionMetric,
    MisuseMetric,
    NonAdviceMetric,
    PatternMatchMetric,
    PIILeakageMetric,
    PromptAlignmentMetric,
    RoleAdherenceMetric,
    RoleViolationMetric,
    SummarizationMetric,
    TaskCompletionMetric,
    ToolCorrectnessMetric,
    ToolUseMetric,
    TopicAdherenceMetric,
    ToxicityMetric,
    TurnContextualPrecisionMetric,
    TurnContextualRecallMetric,
    TurnContextualRelevancyMetric,
    TurnFaithfulnessMetric,
    TurnRelevancyMetric,
)
from deepeval.models import DeepEvalBaseLLM
from deepeval.test_case import ConversationalTestCase, MultiTurnParams, SingleTurnParams, ToolCall, ToolCallParams
from pydantic import BaseModel, create_model

from evaluator import suite as s
from evaluator.engine import custom, threaded
from evaluator.engine.judge import ABSENT, REFUSED, UNMATCHED, WEIGHTED, Scoring, scoring_notes
from evaluator.engine.steps import SharedSteps
from evaluator.engine.testcase import TestCase
from evaluator.errors import InfrastructureError

AnyMetric = BaseMetric | BaseConversationalMetric

# The DeepEval class behind each built-in metric type (G-Eval's two kinds included). The required-field test
# compares each class's declared parameters with `suite.REQUIRED_PARAMS` through this table.
METRIC_CLASSES: dict[str, type[Any]] = {
    "exact_match": ExactMatchMetric,
    "pattern_match": PatternMatchMetric,
    "json_correctness": JsonCorrectnessMetric,
    "answer_relevancy": AnswerRelevancyMetric,
    "faithfulness": FaithfulnessMetric,
    "hallucination": HallucinationMetric,
    "contextual_precision": ContextualPrecisionMetric,
    "contextual_recall": ContextualRecallMetric,
    "contextual_relevancy": ContextualRelevancyMetric,
    "bias": BiasMetric,
    "toxicity": ToxicityMetric,
    "summarization": SummarizationMetric,
    "prompt_alignment": PromptAlignmentMetric,
    "tool_correctness": ToolCorrectnessMetric,
    "task_completion": TaskCompletionMetric,
    "argument_correctness": ArgumentCorrectnessMetric,
    "pii_leakage": PIILeakageMetric,
    "non_advice": NonAdviceMetric,
    "misuse": MisuseMetric,
    "role_violation": RoleViolationMetric,
    "g_eval": GEval,
    "conversation_completeness": ConversationCompletenessMetric,
    "knowledge_retention": KnowledgeRetentionMetric,
    "role_adherence": RoleAdherenceMetric,
    "turn_relevancy": TurnRelevancyMetric,
    "goal_accuracy": GoalAccuracyMetric,
    "topic_adherence": TopicAdherenceMetric,
    "tool_use": ToolUseMetric,
    "turn_faithfulness": TurnFaithfulnessMetric,
    "turn_contextual_precision": TurnContextualPrecisionMetric,
    "turn_contextual_recall": TurnContextualRecallMetric,
    "turn_contextual_relevancy": TurnContextualRelevancyMetric,
    "conversational_g_eval": ConversationalGEval,
}

# DeepEval metrics whose async path still makes a synchronous judge call (DeepEval 4.3: TurnFaithfulnessMetric's
# `_a_get_faithfulness_scores` calls the sync `_get_interaction_score_and_reason`). They are measured synchronously
# in a worker thread (engine/threaded.py). The catalogue test runs every metric type on a real server, so a
# DeepEval release that adds such a call to another metric fails there.
SYNC_ONLY = frozenset({"turn_faithfulness"})


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
    threshold: float | None
    success: bool
    reason: str | None
    error: str | None
    error_kind: str | None = None
    scoring: Scoring | None = None  # how a G-Eval score was computed (engine/judge.py); None for other metrics


def schema_model(name: str, schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model from a flat JSON Schema object, for DeepEval's JsonCorrectnessMetric."""
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for prop, definition in (schema.get("properties") or {}).items():
        python_type = _JSON_TYPES.get(str(definition.get("type", "string")), Any)
        fields[prop] = (python_type, ...) if prop in required else (python_type | None, None)
    return create_model(name, **fields)


_PARAMETERS: dict[type[Any], frozenset[str]] = {}


def _accepts(cls: type[Any], parameter: str) -> bool:
    names = _PARAMETERS.get(cls)
    if names is None:
        names = _PARAMETERS[cls] = frozenset(inspect.signature(cls.__init__).parameters)
    return parameter in names


def _tool_call(tool: s.ToolSpec) -> ToolCall:
    return ToolCall(**tool.model_dump(exclude_none=True))


GEvalSpec = s.GEval | s.ConversationalGEval


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
        self._classes: dict[str, type[AnyMetric]] = {}  # custom metric classes, imported on first use
        self.generated_steps: dict[str, list[str]] = {}

    # --- G-Eval steps from criteria ------------------------------------------------------------------------
    def criteria_only(self) -> list[GEvalSpec]:
        return [sp for sp in self.specs if isinstance(sp, s.GEval | s.ConversationalGEval) and not sp.evaluation_steps]

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
            if isinstance(spec, s.GEval | s.ConversationalGEval)
        }

    async def _generate_steps(self, spec: GEvalSpec) -> list[str]:
        metric = self._g_eval(spec, steps=None)
        # DeepEval's own step generation (prompt, schema, parsing); it is what `a_measure` would run per case. No
        # public method writes the steps alone, so this private one stays, and pyproject.toml pins DeepEval's minor
        # version (tests/contract/test_dependency_pins.py holds this).
        if isinstance(metric, GEval):
            steps = await metric._a_generate_evaluation_steps(False)
        else:
            steps = await metric._a_generate_evaluation_steps()
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
        if isinstance(spec, s.GEval | s.ConversationalGEval):
            steps = spec.evaluation_steps or self.generated_steps.get(spec.key)
            if not steps:
                raise RuntimeError(f"G-Eval '{spec.key}' has no steps: MetricFactory.prepare() must run first")
            return self._g_eval(spec, steps=steps)
        if isinstance(spec, s.ExactMatch):
            return ExactMatchMetric(threshold=spec.threshold)
        if isinstance(spec, s.PatternMatch):
            return PatternMatchMetric(pattern=spec.pattern, ignore_case=spec.ignore_case, threshold=spec.threshold)
        options: dict[str, Any] = {}
        if isinstance(spec, s.JsonCorrectness):
            options = {"expected_schema": self._schemas[spec.key], "include_reason": False, "strict_mode": False}
        elif isinstance(spec, s.Summarization):
            options = {
                "n": spec.n,
                "assessment_questions": spec.assessment_questions,
                "truths_extraction_limit": spec.truths_extraction_limit,
            }
        elif isinstance(spec, s.PromptAlignment):
            options = {"prompt_instructions": list(spec.prompt_instructions)}
        elif isinstance(spec, s.ToolCorrectness):
            options = {
                "evaluation_params": [ToolCallParams(p) for p in spec.evaluation_params],
                "should_exact_match": spec.should_exact_match,
                "should_consider_ordering": spec.should_consider_ordering,
                "available_tools": [_tool_call(t) for t in spec.available_tools] if spec.available_tools else None,
            }
        elif isinstance(spec, s.TaskCompletion):
            options = {"task": spec.task}
        elif isinstance(spec, s.TopicAdherence):
            options = {"relevant_topics": list(spec.relevant_topics)}
        elif isinstance(spec, s.ToolUse):
            options = {"available_tools": [_tool_call(t) for t in spec.available_tools]}
        elif isinstance(spec, s.NonAdvice):
            options = {"advice_types": list(spec.advice_types)}
        elif isinstance(spec, s.Misuse):
            options = {"domain": spec.domain}
        elif isinstance(spec, s.RoleViolation):
            options = {"role": spec.role}
        elif isinstance(
            spec,
            s.ConversationCompleteness
            | s.TurnRelevancy
            | s.TurnFaithfulness
            | s.TurnContextualPrecision
            | s.TurnContextualRecall
            | s.TurnContextualRelevancy,
        ):
            options = {"window_size": spec.window_size}
        if spec.type in SYNC_ONLY:
            judge, asynchronous = threaded.bind_judge(self.judge), False
        else:
            judge, asynchronous = self.judge, True
        cls = METRIC_CLASSES[spec.type]
        return _construct(cls, asynchronous, threshold=spec.threshold, model=judge, **options)

    def _g_eval(self, spec: GEvalSpec, steps: list[str] | None) -> GEval | ConversationalGEval:
        if isinstance(spec, s.GEval):
            return GEval(
                name=spec.key,
                criteria=spec.criteria,
                evaluation_steps=steps,
                evaluation_params=[SingleTurnParams(p) for p in spec.evaluation_params],
                model=self.judge,
                threshold=spec.threshold,
                async_mode=True,
            )
        return ConversationalGEval(
            name=spec.key,
            criteria=spec.criteria,
            evaluation_steps=steps,
            evaluation_params=[MultiTurnParams(p) for p in spec.evaluation_params],
            model=self.judge,
            threshold=spec.threshold,
            async_mode=True,
        )


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


def _construct(cls: type[Any], asynchronous: bool, **kwargs: Any) -> AnyMetric:
    kwargs["async_mode"] = asynchronous
    if _accepts(cls, "eval_mode"):
        kwargs["eval_mode"] = "llm"
    metric: AnyMetric = cls(**kwargs)
    return metric


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


def _with_spec_defaults(spec: s.MetricSpec, test_case: TestCase) -> TestCase:
    """Suite-level defaults a metric spec supplies to the test case (role adherence's `chatbot_role`)."""
    if (
        isinstance(spec, s.RoleAdherence)
        and spec.chatbot_role
        and isinstance(test_case, ConversationalTestCase)
        and not test_case.chatbot_role
    ):
        return test_case.model_copy(update={"chatbot_role": spec.chatbot_role})
    return test_case


async def score(metric: AnyMetric, spec: s.MetricSpec, test_case: TestCase) -> MetricOutcome:
    """Runs one metric; an exception becomes an error outcome, never a lost case."""
    from evaluator.engine.http import CallError

    threshold = _threshold(metric, spec)
    notes: list[Scoring] = []
    token = scoring_notes.set(notes)
    try:
        test_case = _with_spec_defaults(spec, test_case)
        if isinstance(spec, s.Custom):
            await custom.measure(metric, test_case)
        elif spec.type in SYNC_ONLY:
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
