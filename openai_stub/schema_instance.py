"""Build a small JSON document that validates against a JSON schema, as pydantic emits them.

The stub server answers schema-constrained judge calls (DeepEval's pydantic schemas) with such a document, so
that metric code runs its real parsing path. The result is deterministic and biased by a "verdict": with the
default `yes` a judge looks satisfied (enums prefer "yes", booleans true, unbounded numbers 10, bounded
numbers their maximum); with `no` it looks unsatisfied (enums prefer "no", booleans false, numbers their
minimum). DeepEval schemas whose unbounded number is a 0..1 score (`_UNIT_SCALE`) get 1 or 0 instead.
"""

from __future__ import annotations

from typing import Any

JsonSchema = dict[str, Any]

_NEGATIVE = frozenset({"no", "false", "low", "fail"})
_MAX_DEPTH = 32
_STRING_FORMATS: dict[str, str] = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "stub@example.com",
    "uri": "http://127.0.0.1/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


# DeepEval judge schemas whose unbounded number is a 0..1 score (their prompts ask for that scale, unlike G-Eval's
# 0..10 `ReasonScore`): (schema title, property) → 1.0 for a satisfied judge, 0.0 for an unsatisfied one.
_UNIT_SCALE: frozenset[tuple[str, str]] = frozenset({
    ("TaskCompletionVerdict", "verdict"),
    ("GoalScore", "score"),
    ("PlanScore", "score"),
    ("ToolSelectionScore", "score"),
})  # fmt: skip


class SchemaError(ValueError):
    """The schema uses something this generator cannot satisfy (e.g. an unresolvable $ref)."""


def instance_for(schema: JsonSchema, verdict: str = "yes") -> Any:
    """Return a JSON value valid against `schema`; `verdict` biases enums, booleans and numbers."""
    return _Builder(schema, verdict.lower()).build(schema, 0)


class _Builder:
    def __init__(self, root: JsonSchema, verdict: str) -> None:
        self.root = root
        self.verdict = verdict
        self.negative = verdict in _NEGATIVE
        self.active: list[str] = []  # $refs being expanded: a recursive one ends in [] or another branch

    def resolve(self, ref: str) -> JsonSchema:
        if not ref.startswith("#"):
            raise SchemaError(f"only local $ref is supported, got {ref!r}")
        node: Any = self.root
        for raw in ref[1:].split("/"):
            if not raw:
                continue
            part = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise SchemaError(f"unresolvable $ref {ref!r}")
            node = node[part]
        if not isinstance(node, dict):
            raise SchemaError(f"$ref {ref!r} does not point at a schema")
        return node

    def build(self, schema: Any, depth: int) -> Any:
        if schema is True or not isinstance(schema, dict):
            return "ok"
        if depth > _MAX_DEPTH:
            raise SchemaError("schema nests deeper than the stub supports (recursive without an exit?)")
        if "$ref" in schema:
            ref = schema["$ref"]
            merged = {**self.resolve(ref), **{k: v for k, v in schema.items() if k != "$ref"}}
            self.active.append(ref)
            try:
                return self.build(merged, depth + 1)
            finally:
                self.active.pop()
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.pick_enum(list(schema["enum"]))
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
                merged = _merge(merged, part)
            return self.build(merged, depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.build(self.pick_branch(schema[key], depth), depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"] or ["null"]
            kind = kinds[0]
        if kind is None:
            if "properties" in schema or "required" in schema:
                kind = "object"
            elif "items" in schema or "prefixItems" in schema:
                kind = "array"
            else:
                return "ok"
        return self.build_typed(kind, schema, depth)

    def build_typed(self, kind: str, schema: JsonSchema, depth: int) -> Any:
        if kind == "object":
            properties: dict[str, Any] = schema.get("properties", {})
            required: list[str] = schema.get("required", [])
            title = str(schema.get("title", ""))
            return {
                name: (0.0 if self.negative else 1.0)
                if (title, name) in _UNIT_SCALE
                else self.build(properties.get(name, {}), depth + 1)
                for name in required
            }
        if kind == "array":
            return self.build_array(schema, depth)
        if kind == "string":
            return _string(schema)
        if kind == "integer":
            return int(self.number(schema, integer=True))
        if kind == "number":
            return self.number(schema, integer=False)
        if kind == "boolean":
            return not self.negative
        if kind == "null":
            return None
        raise SchemaError(f"unsupported JSON schema type {kind!r}")

    def build_array(self, schema: JsonSchema, depth: int) -> list[Any]:
        prefix: list[Any] = schema.get("prefixItems", [])
        items = [self.build(p, depth + 1) for p in prefix]
        wanted = max(1, int(schema.get("minItems", 1)))
        if "maxItems" in schema:
            wanted = min(wanted, int(schema["maxItems"]))
        item_schema = schema.get("items", {})
        if "minItems" not in schema and self.recursive(item_schema):
            wanted = len(items)
        while len(items) < wanted and item_schema is not False:
            items.append(self.build(item_schema, depth + 1))
        return items

    def pick_enum(self, values: list[Any]) -> Any:
        if not values:
            raise SchemaError("empty enum")
        for preferred in (self.verdict, "no" if self.negative else "yes"):
            if preferred in values:
                return preferred
        return values[0]

    def recursive(self, schema: Any) -> bool:
        return isinstance(schema, dict) and schema.get("$ref") in self.active

    def pick_branch(self, branches: list[Any], depth: int) -> Any:
        """Prefer a non-null, non-recursive branch so optional fields carry a value; else the first."""
        for branch in branches:
            if self.recursive(branch):
                continue
            resolved = branch
            if isinstance(branch, dict) and "$ref" in branch:
                resolved = self.resolve(branch["$ref"])
            if not (isinstance(resolved, dict) and resolved.get("type") == "null"):
                return branch
        return branches[0]

    def number(self, schema: JsonSchema, *, integer: bool) -> float:
        step = 1.0 if integer else 0.0
        low = _bound(schema, "minimum", "exclusiveMinimum", +1, step)
        high = _bound(schema, "maximum", "exclusiveMaximum", -1, step)
        if self.negative:
            value = low if low is not None else 0.0
        else:
            value = high if high is not None else max(10.0, low if low is not None else 10.0)
        if high is not None:
            value = min(value, high)
        if low is not None:
            value = max(value, low)
        if integer:
            value = float(int(value))
        multiple = schema.get("multipleOf")
        if multiple:
            value = (value // multiple) * multiple
            if low is not None and value < low:
                value += multiple
        return value


def _bound(schema: JsonSchema, inclusive: str, exclusive: str, direction: int, step: float) -> float | None:
    if inclusive in schema:
        return float(schema[inclusive])
    if exclusive in schema:
        nudge = step if step else max(abs(float(schema[exclusive])) * 1e-9, 1e-9)
        return float(schema[exclusive]) + direction * nudge
    return None


def _string(schema: JsonSchema) -> str:
    fmt = schema.get("format")
    value = _STRING_FORMATS.get(fmt, "ok") if isinstance(fmt, str) else "ok"
    minimum = int(schema.get("minLength", 0))
    if len(value) < minimum:
        value = value + "k" * (minimum - len(value))
    if "maxLength" in schema:
        value = value[: int(schema["maxLength"])]
    return value


def _merge(left: JsonSchema, right: JsonSchema) -> JsonSchema:
    """Shallow allOf merge: union of properties and required; other keys from the later part."""
    merged = {**left, **right}
    if "properties" in left or "properties" in right:
        merged["properties"] = {**left.get("properties", {}), **right.get("properties", {})}
    if "required" in left or "required" in right:
        merged["required"] = list(dict.fromkeys([*left.get("required", []), *right.get("required", [])]))
    return merged
