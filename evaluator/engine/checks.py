"""The load-time check: every case carries what every metric of the suite declares it needs.

A user mistake found before the first call, not mid-run: exit 2 with the dataset file, the case's line, the
missing field and the metric. Built-in metrics' needs are the registry's (evaluator/metric_types.py, held equal
to DeepEval's own declarations by a test); a custom metric's are read from its class here, after importing and
constructing it once, so a broken import, a class that is not a metric or arguments its constructor refuses are
exit 2 as well, naming the suite file, line and field.
"""

from __future__ import annotations

from evaluator import suite as s
from evaluator.dataset import Case
from evaluator.errors import InputError, location
from evaluator.metric_registry import fields_for


def check_metrics(loaded: s.LoadedSuite, cases: list[Case]) -> None:
    """Raises InputError for the first metric a case cannot be scored by."""
    for index, spec in enumerate(loaded.suite.metrics):
        if isinstance(spec, s.Custom):
            conversational, fields = _custom_needs(loaded, index, spec)
        else:
            conversational, fields = spec.registered.conversational, spec.required_fields()
        for case in cases:
            _check_case(loaded, spec, case, conversational, fields)


def _custom_needs(loaded: s.LoadedSuite, index: int, spec: s.Custom) -> tuple[bool, tuple[str, ...]]:
    # DeepEval only for a custom metric: planning a run of built-in metrics (the `--workers` parent, `prepare`)
    # stays free of its import, seconds of CPU that would delay every worker's start.
    from evaluator.engine import custom
    from evaluator.engine.judge import NoJudge

    try:
        cls = custom.resolve_class(spec)
        custom.instantiate(cls, spec, NoJudge())
    except custom.CustomMetricError as exc:
        raise InputError(f"{s.suite_location(loaded, ('metrics', index, exc.field))}: {exc.message}") from None
    conversational = custom.is_conversational(cls)
    try:
        return conversational, fields_for(custom.declared_params(cls), conversational=conversational)
    except ValueError as exc:
        raise InputError(f"{s.suite_location(loaded, ('metrics', index, 'class'))}: {cls.__name__} {exc}") from None


def _check_case(
    loaded: s.LoadedSuite, spec: s.MetricSpec, case: Case, conversational: bool, fields: tuple[str, ...]
) -> None:
    where = str(loaded.dataset_path)
    if case.conversational and not conversational:
        raise InputError(
            f"{location(where, case.line, 'turns')}: metric '{spec.key}' scores single-turn cases (an input and "
            f"its output), but this case is a conversation"
        )
    for field in fields:
        if not _has(case, field):
            what = " (it scores conversations)" if field == "turns" else ""
            if case.conversational and field in ("retrieval_context", "tools_called"):
                what = " (on at least one turn)"
            raise InputError(f"{location(where, case.line, field)}: required by metric '{spec.key}'{what} but missing")


def _has(case: Case, field: str) -> bool:
    if case.turns is not None and field in ("retrieval_context", "tools_called"):
        return any(getattr(turn, field) for turn in case.turns)
    return getattr(case, field, None) is not None
