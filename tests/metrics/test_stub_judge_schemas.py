"""The stub answers every judge schema of every catalogue metric with a document DeepEval accepts.

DeepEval parses a judge's answer with the metric's own pydantic schema: for each one, the stub's answer (with a
satisfied and an unsatisfied judge, as `json_schema` and as OpenAI's strict variant) must validate against the JSON
schema and parse into the model, and the schemas DeepEval reads as a 0..1 score must get a score in 0..1.
"""

from __future__ import annotations

import importlib
import inspect
import json

import jsonschema
import pydantic
import pytest
from openai.lib._pydantic import to_strict_json_schema

from evaluator.metric_types import REGISTRY
from openai_stub.schema_instance import _UNIT_SCALE, instance_for


def _judge_schemas() -> list[type[pydantic.BaseModel]]:
    found: dict[str, type[pydantic.BaseModel]] = {}
    for cls in (entry.deepeval_class() for entry in REGISTRY.values() if entry.deepeval):
        package = cls.__module__.rsplit(".", 1)[0]
        try:
            module = importlib.import_module(f"{package}.schema")
        except ModuleNotFoundError:
            continue  # a deterministic metric (exact or pattern match) asks no judge
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, pydantic.BaseModel) and obj.__module__ == module.__name__:
                found[f"{package.rsplit('.', 1)[1]}.{name}"] = obj
    return [found[k] for k in sorted(found)]


SCHEMAS = _judge_schemas()


def test_every_catalogue_metric_with_a_judge_has_schemas_here() -> None:
    packages = {m.__module__.split(".")[2] for m in SCHEMAS}
    assert {"bias", "contextual_precision", "summarization", "task_completion", "goal_accuracy",
            "turn_faithfulness", "conversational_g_eval", "tool_correctness"} <= packages  # fmt: skip


@pytest.mark.parametrize("model", SCHEMAS, ids=lambda m: f"{m.__module__.split('.')[2]}.{m.__name__}")
@pytest.mark.parametrize("verdict", ["yes", "no"])
def test_stub_answers_parse_as_deepeval_parses_them(model: type[pydantic.BaseModel], verdict: str) -> None:
    for schema in (model.model_json_schema(), to_strict_json_schema(model)):
        document = instance_for(schema, verdict)
        jsonschema.validate(document, schema)
        model.model_validate_json(json.dumps(document))
        for title, field in _UNIT_SCALE:
            if schema.get("title") == title:
                assert document[field] == (1.0 if verdict == "yes" else 0.0)


def test_unit_scale_entries_name_real_deepeval_schema_fields() -> None:
    """A DeepEval upgrade that renames one of these schemas or fields must fail here, not silently fall back."""
    fields = {(m.__name__, f) for m in SCHEMAS for f in m.model_fields}
    assert fields >= _UNIT_SCALE
