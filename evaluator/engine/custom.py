"""Custom metrics: `type: custom, class: "package.module:ClassName", args: {...}` in a suite.

Any DeepEval `BaseMetric` (single-turn) or `BaseConversationalMetric` subclass that the image or virtualenv
provides. It gets the shard's judge as `model=` when its constructor takes a `model`, and it is scored and
reported like a built-in. Everything a user can get wrong (a module that does not import, a name that is not a
metric class, arguments the constructor refuses, no threshold) is found before the first call and reported as
`CustomMetricError`, which the load-time check turns into an exit-2 message naming the suite file, line and field.

A metric written the synchronous way (`measure` only, calling `self.model.generate`) runs in a worker thread; its
`generate` calls are handed to the shard's event loop, so they share the judge's session, limit and retries.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from typing import Any

from deepeval.metrics import BaseConversationalMetric, BaseMetric
from deepeval.models import DeepEvalBaseLLM

from evaluator import suite as s

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
        raise CustomMetricError("class", f"cannot import module '{module_name}' ({reason})") from None
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
        kwargs["model"] = bind_judge(judge)
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
    synchronous: Any = metric.measure
    await asyncio.to_thread(synchronous, test_case, **_quiet(synchronous))


def _quiet(method: Any) -> dict[str, Any]:
    """DeepEval's progress indicator off, when the method takes the flag (a user's method may not)."""
    parameters = inspect.signature(method).parameters
    takes_it = "_show_indicator" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    return {"_show_indicator": False} if takes_it else {}


class _LoopBoundCalls:
    """Methods outside the DeepEvalBaseLLM subclass on purpose: DeepEval wraps methods defined on a subclass in
    tracing spans (see engine/judge.py)."""

    judge: DeepEvalBaseLLM
    loop: asyncio.AbstractEventLoop

    def load_model(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def get_model_name(self, *args: Any, **kwargs: Any) -> str:
        return str(self.judge.get_model_name())

    async def a_generate(self, *args: Any, **kwargs: Any) -> Any:
        return await self.judge.a_generate(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("generate() called on the event loop; a metric's async code must use a_generate()")
        return asyncio.run_coroutine_threadsafe(self.judge.a_generate(*args, **kwargs), self.loop).result()


class _LoopBoundJudge(_LoopBoundCalls, DeepEvalBaseLLM):  # type: ignore[no-untyped-call]
    def __init__(self, judge: DeepEvalBaseLLM, loop: asyncio.AbstractEventLoop) -> None:
        self.judge = judge
        self.loop = loop
        super().__init__(str(judge.get_model_name()))


def bind_judge(judge: DeepEvalBaseLLM) -> DeepEvalBaseLLM:
    """The shared judge, also callable synchronously from a metric's worker thread (bound to the running loop;
    outside a loop, e.g. at load-time checks, the judge itself)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return judge
    if isinstance(judge, _LoopBoundJudge):
        return judge
    return _LoopBoundJudge(judge, loop)
