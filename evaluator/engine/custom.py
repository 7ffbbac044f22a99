"""Custom metrics: `type: custom, class: "package.module:ClassName", args: {...}` in a suite.

Any DeepEval `BaseMetric` (single-turn) or `BaseConversationalMetric` subclass that the image or virtualenv
provides. It gets the shard's judge as `model=` when its constructor takes a `model`, and it is scored and
reported like a built-in. Everything a user can get wrong (a module that does not import, a name that is not a
metric class, arguments the constructor refuses, no threshold) is found before the first call and reported as
`CustomMetricError`, which the load-time check turns into an exit-2 message naming the suite file, line and field.

A metric written the synchronous way (`measure` only, calling `self.model.generate`) runs in a worker thread; its
`generate` calls are handed to the shard's event loop (engine/threaded.py), so they share the judge's session,
limit and retries.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from deepeval.metrics import BaseConversationalMetric, BaseMetric
from deepeval.models import DeepEvalBaseLLM

from evaluator import suite as s
from evaluator.engine import threaded

AnyMetric = BaseMetric | BaseConversationalMetric


class CustomMetricError(Exception):
    """A custom metric the evaluator cannot use; `field` is the suite field to blame ("class" or "args")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def resolve_class(spec: s.Custom) -> type[AnyMetric]:
    """Imports `package.module:ClassName` and checks that it is a concrete DeepEval metric class."""
    module_name, _, attribute = spec.class_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a user module can fail to import in any way: ImportError, SyntaxError, its own code
        reason = f"{type(exc).__name__}: {exc}"
        hint = "; install it where the evaluator runs, or put it on PYTHONPATH" if isinstance(exc, ImportError) else ""
        raise CustomMetricError("class", f"cannot import module '{module_name}' ({reason}){hint}") from None
    candidate = getattr(module, attribute, None)
    if candidate is None:
        raise CustomMetricError("class", f"module '{module_name}' has no attribute '{attribute}'")
    if not (isinstance(candidate, type) and issubclass(candidate, BaseMetric | BaseConversationalMetric)):
        raise CustomMetricError(
            "class",
            f"'{spec.class_path}' is not a DeepEval metric class (a subclass of deepeval.metrics.BaseMetric or "
            f"BaseConversationalMetric)",
        )
    if inspect.isabstract(candidate):
        missing = ", ".join(sorted(getattr(candidate, "__abstractmethods__", ())))
        raise CustomMetricError("class", f"'{spec.class_path}' is abstract (does not implement: {missing})")
    return candidate


def is_conversational(cls: type[AnyMetric]) -> bool:
    return issubclass(cls, BaseConversationalMetric)


def declared_params(cls: type[AnyMetric]) -> tuple[str, ...]:
    """What the class declares it needs, in DeepEval's words, as the built-in metrics declare it."""
    if is_conversational(cls):
        params = getattr(cls, "_required_test_case_params", None)
        names = _values(params)
        if getattr(cls, "_requires_chatbot_role", False):
            names = (*names, "chatbot_role")
        return names
    return _values(getattr(cls, "_required_params", None))


def _values(params: Any) -> tuple[str, ...]:
    # BaseMetric's own default is the typing object `List[SingleTurnParams]`, not a list: it declares nothing.
    if not isinstance(params, list | tuple):
        return ()
    return tuple(str(getattr(p, "value", p)) for p in params)


def instantiate(cls: type[AnyMetric], spec: s.Custom, judge: DeepEvalBaseLLM) -> AnyMetric:
    """A fresh metric for one case: `args` as given, the shared judge as `model=`, the spec's threshold."""
    parameters = inspect.signature(cls.__init__).parameters
    if "model" in spec.args:
        raise CustomMetricError(
            "args", "do not set 'model': custom metrics are given the suite's judge (its 'judge' section)"
        )
    kwargs = dict(spec.args)
    if "model" in parameters:
        kwargs["model"] = threaded.bind_judge(judge)
    if spec.threshold is not None and "threshold" in parameters:
        kwargs["threshold"] = spec.threshold
    try:
        metric = cls(**kwargs)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise CustomMetricError("args", f"{cls.__name__}(...) refused its arguments ({reason})") from None
    if spec.threshold is not None and "threshold" not in parameters:
        metric.threshold = spec.threshold
    threshold = getattr(metric, "threshold", None)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool):
        raise CustomMetricError(
            "threshold", f"{cls.__name__} has no numeric threshold; set 'threshold' on the metric in the suite"
        )
    return metric


async def measure(metric: AnyMetric, test_case: Any) -> None:
    """`a_measure` when the class has its own; else its synchronous `measure` in a worker thread."""
    base = BaseConversationalMetric if isinstance(metric, BaseConversationalMetric) else BaseMetric
    if type(metric).a_measure is not base.a_measure:
        await metric.a_measure(test_case, **_quiet(metric.a_measure))
        return
    await threaded.measure_in_thread(metric, test_case)


def _quiet(method: Any) -> dict[str, Any]:
    return threaded.quiet(method)
