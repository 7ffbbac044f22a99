"""What every file format shares: schema names and versions, the unit key, the strict base model, and how a
model is written (JSON) and how a validation error is told (field path and message)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evaluator.policy import DEFAULT_VARIANT

RESULT_SCHEMA: Final = "evaluator.result/v3"
MANIFEST_SCHEMA: Final = "evaluator.manifest/v4"
REPORT_SCHEMA: Final = "evaluator.report/v5"
RESULT_SCHEMAS: Final = ("evaluator.result/v1", "evaluator.result/v2", RESULT_SCHEMA)
MANIFEST_SCHEMAS: Final = ("evaluator.manifest/v1", "evaluator.manifest/v2", "evaluator.manifest/v3", MANIFEST_SCHEMA)
REPORT_SCHEMAS: Final = (
    "evaluator.report/v1", "evaluator.report/v2", "evaluator.report/v3", "evaluator.report/v4", REPORT_SCHEMA
)  # fmt: skip
MANIFEST_SCHEMA_V1: Final = "evaluator.manifest/v1"
REPORT_SCHEMA_V1: Final = "evaluator.report/v1"


def unit_key(variant: str, case_id: str) -> str:
    """The name of one unit of work (a case answered by a variant): the bare case id for the implicit variant (so
    a single-target suite's results and messages name cases as its dataset does), else `variant/case_id` (a
    variant name cannot hold a '/')."""
    return case_id if variant == DEFAULT_VARIANT else f"{variant}/{case_id}"


NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class FileModel(BaseModel):
    """Strict, closed records: unknown or mistyped fields are damage, not data."""

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


def to_json(model: BaseModel, *, indent: int | None = 1) -> str:
    """The file text of a model, with the `schema` field spelled as on disk."""
    return model.model_dump_json(by_alias=True, indent=indent)


def to_dict(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a model, as it is written."""
    return model.model_dump(mode="json", by_alias=True)


def _path(loc: tuple[int | str, ...]) -> str:
    """('cases', 3, 'metrics', 'm', 'score') -> 'cases[3].metrics.m.score'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(field path, message) of a validation error's first problem, e.g. ('cases[3].metrics.m.score', ...)."""
    errors = exc.errors()
    if not errors:
        return "", str(exc)
    return _path(tuple(errors[0]["loc"])), str(errors[0]["msg"])


def describe(exc: ValidationError, limit: int = 3) -> str:
    """The shallowest problems of a validation error (at most `limit`), each naming its field."""
    lines = []
    for item in sorted(exc.errors(), key=lambda e: len(e["loc"]))[:limit]:
        loc = tuple(item["loc"])
        if item["type"] == "missing":
            parent = _path(loc[:-1])
            lines.append(f"{parent + ': ' if parent else ''}missing field '{loc[-1]}'")
        else:
            lines.append(f"field '{_path(loc) or '(top level)'}': {item['msg']}")
    more = len(exc.errors()) - limit
    if more > 0:
        lines.append(f"and {more} more")
    return "; ".join(lines)
