"""The metric registry: what the evaluator knows about every metric type a suite accepts, each declared once.

A metric type is its options model (what a suite writes under `metrics:`, a `MetricOptions` subclass) decorated
with `@metric_type(...)`: the DeepEval class behind it, the case fields it needs (in DeepEval's words), whether it
calls the judge, scores conversations, or must be measured synchronously, and its line of documentation. The
suite's schema (`RegisteredMetric`, the discriminated union of every registered model), the load-time field check
(engine/checks.py), the engine's construction (engine/metrics.py) and the README's metric table (`readme_table`,
held equal by a test) all read `REGISTRY`; the built-in types are declared in evaluator/metric_types.py. Modelled
on inspect-ai's registry of scorers with typed options.

No DeepEval import here: a metric's class is named by its import path and imported where a metric is built.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, TypeAdapter
from pydantic_core import core_schema

# Fields every case has by construction: `input` is required by the loader, `actual_output` comes from the target
# (or the dataset: checked apart), a conversation's `role`/`content` from its `turns`.
_ALWAYS_PRESENT = frozenset({"input", "actual_output", "role", "content"})
# What a dataset can carry for each kind of case (see evaluator/dataset.py); on a conversation `retrieval_context`
# and `tools_called` live on the turns.
SINGLE_TURN_FIELDS = frozenset({"expected_output", "context", "retrieval_context", "tools_called", "expected_tools"})
CONVERSATION_FIELDS = frozenset({
    "scenario", "expected_outcome", "chatbot_role", "user_description", "context", "retrieval_context", "tools_called",
})  # fmt: skip
ON_TURNS = frozenset({"retrieval_context", "tools_called"})


def fields_for(params: tuple[str, ...], *, conversational: bool) -> tuple[str, ...]:
    """DeepEval parameters → the dataset fields a case must carry for them (`turns` for any conversation).

    Raises ValueError naming a parameter no dataset field carries (a custom metric may declare one)."""
    fields = tuple(dict.fromkeys(p for p in params if p not in _ALWAYS_PRESENT))
    carried = CONVERSATION_FIELDS if conversational else SINGLE_TURN_FIELDS
    unknown = [f for f in fields if f not in carried]
    if unknown:
        kind = "a conversational" if conversational else "a single-turn"
        raise ValueError(f"needs '{unknown[0]}', which {kind} case of a dataset cannot carry")
    return ("turns", *fields) if conversational else fields


@dataclass(frozen=True)
class MetricType:
    """One registry entry: what the evaluator knows about a metric type besides its options."""

    name: str  # the suite's `type`
    options: type[MetricOptions]
    deepeval: str | None  # "module:Class" of the metric; None: the suite names it (`custom`)
    needs: tuple[str, ...] | None  # DeepEval's declared params; None: the options say (`evaluation_params`)
    judge: bool  # always calls the judge (an options model may refine this, see `MetricOptions.calls_judge`)
    conversational: bool  # scored on a ConversationalTestCase
    sync_only: bool  # DeepEval's async path still makes a synchronous judge call: measure in a worker thread
    doc: str  # the README's "options" column
    needs_doc: str  # a note after the README's "the case needs" column

    @property
    def class_name(self) -> str | None:
        return self.deepeval.rsplit(":", 1)[1] if self.deepeval else None

    def deepeval_class(self) -> type[Any]:
        """The metric class itself (imports DeepEval, or wherever it lives)."""
        if self.deepeval is None:
            raise TypeError(f"metric type {self.name!r} names its class in the suite")
        module, _, name = self.deepeval.partition(":")
        cls: type[Any] = getattr(importlib.import_module(module), name)
        return cls


REGISTRY: dict[str, MetricType] = {}

OptionsT = TypeVar("OptionsT", bound="MetricOptions")


def metric_type(
    *,
    deepeval: str | None,
    needs: tuple[str, ...] | None,
    judge: bool = True,
    conversational: bool = False,
    sync_only: bool = False,
    doc: str = "—",
    needs_doc: str = "",
) -> Callable[[type[OptionsT]], type[OptionsT]]:
    """Registers an options model as a metric type; its name is the `type` literal the model declares.

    `deepeval` is "module:Class" ("deepeval.metrics:FaithfulnessMetric"); `needs` the parameters the class
    declares (`_required_params`, or `_required_test_case_params` plus `chatbot_role`), checked against DeepEval
    by tests/metrics/test_registry.py."""

    def register(options: type[OptionsT]) -> type[OptionsT]:
        (name,) = get_args(options.model_fields["type"].annotation)
        if name in REGISTRY and REGISTRY[name].options is not options:
            raise ValueError(f"metric type {name!r} is registered twice")
        REGISTRY[name] = MetricType(
            name, options, deepeval, needs, judge, conversational, sync_only, doc, needs_doc
        )  # fmt: skip
        return options

    return register


class MetricOptions(BaseModel):
    """What every metric of a suite has: a name in the results and a threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, description="Name in results; defaults to the metric type.")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)

    @property
    def key(self) -> str:
        return self.name or str(getattr(self, "type"))  # noqa: B009

    @property
    def registered(self) -> MetricType:
        return REGISTRY[str(getattr(self, "type"))]  # noqa: B009

    def calls_judge(self) -> bool:
        """Whether this metric calls the judge (a custom metric is given the judge when the suite has one)."""
        return self.registered.judge

    def declared_params(self) -> tuple[str, ...]:
        """The DeepEval parameters this metric needs, in DeepEval's words."""
        return self.registered.needs or ()

    def optional_params(self) -> tuple[str, ...]:
        """Declared parameters the options themselves supply (so a case may leave them out)."""
        return ()

    def required_fields(self) -> tuple[str, ...]:
        """Dataset fields a built-in metric needs besides input and actual_output (checked before any call).

        For a conversational metric: `turns` (the case is a conversation at all), and `retrieval_context` means
        that some turn carries one. A custom metric's needs come from its class (evaluator/engine/checks.py)."""
        fields = fields_for(self.declared_params(), conversational=self.registered.conversational)
        return tuple(f for f in fields if f not in self.optional_params())

    def deepeval_options(self) -> dict[str, Any]:
        """Constructor keywords of the DeepEval class besides threshold, model and the engine's modes."""
        return {}

    def with_defaults(self, test_case: Any) -> Any:
        """The test case with what these options supply to it (role adherence's `chatbot_role`)."""
        return test_case


# --- the suite's view of the registry ---------------------------------------------------------------------------
def _registered_union() -> Any:
    """The discriminated union of every options model registered now (a type registered later is in it too)."""
    return _union(tuple(entry.options for entry in REGISTRY.values()))


@functools.lru_cache(maxsize=8)
def _union(types: tuple[type[MetricOptions], ...]) -> Any:
    return Annotated[Union[types], Field(discriminator="type")]  # noqa: UP007 (a union of a tuple of types)


@functools.lru_cache(maxsize=8)
def _adapter(union: Any) -> TypeAdapter[Any]:
    return TypeAdapter(union)


def _validate(value: Any) -> MetricOptions:
    spec: MetricOptions = _adapter(_registered_union()).validate_python(value)
    return spec


class RegisteredMetric:
    """`suite.MetricSpec`'s validation: the discriminated union of every registered options model, looked up at
    validation time, so pydantic's messages (an unknown `type` lists the known ones) and error locations are the
    union's own. The JSON schema is the union of the types registered when the `Suite` model was built."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        union = handler.generate_schema(_registered_union())
        return core_schema.no_info_plain_validator_function(_validate, json_schema_input_schema=union)


# --- the README's metric table ------------------------------------------------------------------------------
README_HEADER = (
    "| `type` | DeepEval class | the case needs | options besides `name`, `threshold` |",
    "|---|---|---|---|",
)


def _case_needs(entry: MetricType) -> str:
    if entry.needs is None:
        return entry.needs_doc
    fields = fields_for(entry.needs, conversational=entry.conversational)
    names = [
        f"a turn's `{f}`" if entry.conversational and f in ON_TURNS else f"`{f}`" for f in fields
    ]  # fmt: skip
    text = ", ".join(names) or "—"
    return f"{text} ({entry.needs_doc})" if entry.needs_doc else text


def readme_table() -> str:
    """The README's metric table, one row per registered type in registration order."""
    rows = list(README_HEADER)
    for entry in REGISTRY.values():
        cls = f"`{entry.class_name}`" if entry.class_name else 'yours: `class: "package.module:ClassName"`'
        rows.append(f"| `{entry.name}` | {cls} | {_case_needs(entry)} | {entry.doc} |")
    return "\n".join(rows) + "\n"
