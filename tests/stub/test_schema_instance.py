"""The stub's schema-instance generator: DeepEval's judge schemas and the JSON-schema features of pydantic."""

from __future__ import annotations

import enum
import json
from typing import Literal

import jsonschema
import pydantic
import pytest
from deepeval.metrics.answer_relevancy import schema as relevancy
from deepeval.metrics.faithfulness import schema as faithfulness
from deepeval.metrics.g_eval import schema as g_eval
from deepeval.metrics.hallucination import schema as hallucination
from openai.lib._pydantic import to_strict_json_schema

from openai_stub.schema_instance import SchemaError, instance_for

DEEPEVAL_SCHEMAS = [
    relevancy.Statements,
    relevancy.Verdicts,
    relevancy.AnswerRelevancyScoreReason,
    faithfulness.Verdicts,
    faithfulness.Truths,
    faithfulness.Claims,
    faithfulness.FaithfulnessScoreReason,
    hallucination.Verdicts,
    hallucination.HallucinationScoreReason,
    g_eval.ReasonScore,
    g_eval.Steps,
]


@pytest.mark.parametrize("model", DEEPEVAL_SCHEMAS, ids=lambda m: f"{m.__module__.split('.')[-2]}.{m.__name__}")
@pytest.mark.parametrize("verdict", ["yes", "no"])
def test_deepeval_schemas_parse_as_deepeval_parses_them(model: type[pydantic.BaseModel], verdict: str) -> None:
    schema = model.model_json_schema()
    document = instance_for(schema, verdict)
    jsonschema.validate(document, schema)
    model.model_validate_json(json.dumps(document))  # what deepeval does with a judge's answer
    # openai's SDK sends the strict variant (all fields required, no extras) for structured outputs
    strict = to_strict_json_schema(model)
    jsonschema.validate(instance_for(strict, verdict), strict)
    model.model_validate(instance_for(strict, verdict))


def test_verdict_biases_enums_towards_yes_or_no() -> None:
    schema = relevancy.Verdicts.model_json_schema()
    assert instance_for(schema)["verdicts"][0]["verdict"] == "yes"
    assert instance_for(schema, "no")["verdicts"][0]["verdict"] == "no"
    assert instance_for(schema, "borderline")["verdicts"][0]["verdict"] == "borderline"


def test_unbounded_scores_are_high_for_yes_and_low_for_no() -> None:
    schema = g_eval.ReasonScore.model_json_schema()
    assert instance_for(schema)["score"] == 10
    assert instance_for(schema, "no")["score"] == 0


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Leaf(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=5, max_length=8)
    when: str = pydantic.Field(json_schema_extra={"format": "date-time"})


class Tree(pydantic.BaseModel):
    color: Color
    kind: Literal["a", "b"]
    fixed: Literal["only"]
    count: int = pydantic.Field(ge=3, le=7)
    ratio: float = pydantic.Field(gt=0.0, lt=1.0)
    even: int = pydantic.Field(ge=1, le=9, multiple_of=2)
    flag: bool
    maybe: int | None
    either: Leaf | int
    leaves: list[Leaf] = pydantic.Field(min_length=2, max_length=3)
    pair: tuple[int, str]
    mapping: dict[str, int]
    children: list[Tree]
    optional_note: str = "not required, left out"


def test_pydantic_features_validate_with_both_verdicts() -> None:
    schema = Tree.model_json_schema()
    for verdict in ("yes", "no"):
        document = instance_for(schema, verdict)
        jsonschema.validate(document, schema)
        tree = Tree.model_validate(document)
        assert len(tree.leaves) == 2
        assert tree.children == []  # recursion ends in an empty list
        assert "optional_note" not in document
    assert instance_for(schema)["count"] == 7 and instance_for(schema, "no")["count"] == 3
    assert instance_for(schema)["flag"] is True and instance_for(schema, "no")["flag"] is False
    assert instance_for(schema)["maybe"] is not None  # a non-null branch is preferred


def test_all_of_and_json_pointer_refs() -> None:
    schema = {
        "definitions": {"a/b": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
        "allOf": [{"$ref": "#/definitions/a~1b"}, {"properties": {"y": {"const": 3}}, "required": ["y"]}],
    }
    document = instance_for(schema)
    assert document == {"x": 10, "y": 3}
    jsonschema.validate(document, schema)


def test_unresolvable_or_remote_refs_are_clear_errors() -> None:
    with pytest.raises(SchemaError, match="unresolvable"):
        instance_for({"$ref": "#/$defs/Missing"})
    with pytest.raises(SchemaError, match="only local"):
        instance_for({"$ref": "http://example.com/schema.json"})


def test_endless_recursion_is_an_error_not_a_hang() -> None:
    schema = {
        "$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}, "required": ["n"]}},
        "$ref": "#/$defs/N",
    }
    with pytest.raises(SchemaError, match="deeper"):
        instance_for(schema)
