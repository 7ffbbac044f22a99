"""Variants in the suite: each a named target completed from `target`; a bad one is exit 2 naming file, line and
field; the unit of work is (variant, case), laid out case-major, and every sharding mode covers that product."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import evaluator
from evaluator.dataset import Case
from evaluator.errors import InputError
from evaluator.selection import units_of
from evaluator.sharding import assign, shard_count_for
from tests.helpers import write_suite

CASES = [{"id": f"c{i}", "input": f"q{i}", "expected_output": "a"} for i in range(3)]


def _suite(tmp_path: Path, **overrides: Any) -> Path:
    return write_suite(tmp_path, CASES, metrics=[{"type": "exact_match"}], judge=None, **overrides)


def test_variants_inherit_what_they_leave_out_and_env_moves_only_the_inherited(tmp_path: Path) -> None:
    variants = [
        {"name": "base"},
        {"name": "prompted", "system_prompt": "Be brief.", "prompt_template": "Q: {input}", "temperature": 0.3},
        {"name": "other", "model": "other-model", "base_url": "http://127.0.0.1:7/v1", "max_tokens": 9},
    ]
    loaded = evaluator.load_suite(_suite(tmp_path, variants=variants))
    targets = loaded.suite.targets()
    assert list(targets) == ["base", "prompted", "other"] and loaded.suite.reference == "base"
    assert targets["base"] == loaded.suite.target
    assert targets["prompted"].system_prompt == "Be brief." and targets["prompted"].model == "stub-model"  # type: ignore[union-attr]
    assert (targets["other"].model, targets["other"].max_tokens) == ("other-model", 9)  # type: ignore[union-attr]
    from evaluator.suite import load_suite

    moved = load_suite(
        tmp_path / "suite.yaml", environ={"EVAL_TARGET_MODEL": "m2", "EVAL_TARGET_BASE_URL": "http://h:1/v1"}
    )
    after = moved.suite.targets()
    assert after["base"].model == after["prompted"].model == "m2"  # type: ignore[union-attr]
    assert after["other"].model == "other-model" and after["other"].base_url == "http://127.0.0.1:7/v1"  # type: ignore[union-attr]
    assert after["prompted"].base_url == "http://h:1/v1"  # type: ignore[union-attr]
    assert moved.suite_hash != loaded.suite_hash  # the model decides the results; the URL alone would not


def test_the_hash_ignores_urls_keys_and_profiles_but_not_what_a_variant_sends(tmp_path: Path) -> None:
    one = evaluator.load_suite(_suite(tmp_path / "a", variants=[{"name": "v", "api_key_env": "K1"}]))
    two = evaluator.load_suite(_suite(tmp_path / "b", variants=[{"name": "v", "api_key_env": "K2",
                                      "base_url": "http://other:1/v1"}], profiles={"pr": {"sample": 1}}))  # fmt: skip
    three = evaluator.load_suite(_suite(tmp_path / "c", variants=[{"name": "v", "system_prompt": "x"}]))
    assert one.suite_hash == two.suite_hash != three.suite_hash


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"target": None, "variants": [{"name": "a", "base_url": "http://h:1/v1"}]}, "variants.0.model",
         "variant 'a': Field required (set it on the variant or in 'target')"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "(top level)", "variant names must be unique: a"),
        ({"variants": [{"name": "Big_Name"}]}, "variants.0.name", "String should match pattern"),
        ({"variants": [{"name": "a", "prompt_template": "{nope}"}]}, "variants.0.prompt_template",
         "unknown placeholder"),
        ({"variants": [{"name": "a"}], "compare": {"reference": "b"}}, "(top level)",
         "compare.reference 'b' is not a variant (a)"),
        ({"variants": [{"name": "a", "colour": "red"}]}, "variants.0.colour", "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_a_bad_variant_is_exit_2_naming_file_line_and_field(
    tmp_path: Path, overrides: dict[str, Any], field: str, message: str
) -> None:
    path = _suite(tmp_path, **overrides)
    with pytest.raises(InputError) as error:
        evaluator.load_suite(path)
    assert error.value.exit_code == 2
    text = error.value.message
    assert f"{path}:" in text and message in text, text
    if field != "(top level)":
        assert f"field '{field}'" in text
        line = next(i for i, row in enumerate(path.read_text().splitlines(), start=1) if "variants:" in row)
        assert any(f"{path}:{n}:" in text for n in range(line, line + 12)), text


def _cases(count: int) -> list[Case]:
    return [Case(id=f"c{i}", index=i, line=i + 1, input=f"q{i}") for i in range(count)]


def test_units_are_case_major() -> None:
    units = units_of(_cases(2), ["a", "b", "c"])
    assert [(u.variant, u.case.id, u.index) for u in units] == [
        ("a", "c0", 0), ("b", "c0", 1), ("c", "c0", 2), ("a", "c1", 3), ("b", "c1", 4), ("c", "c1", 5),
    ]  # fmt: skip
    assert [u.key for u in units_of(_cases(1), ["default"])] == ["c0"]  # as before variants existed
    assert [u.key for u in units[:2]] == ["a/c0", "b/c0"]


@given(st.integers(1, 80), st.integers(1, 4), st.integers(1, 12), st.integers(1, 30))
def test_every_mode_covers_the_product_exactly_once(cases: int, variants: int, shards: int, chunk: int) -> None:
    units = units_of(_cases(cases), [f"v{j}" for j in range(variants)])
    every = sorted(u.key for u in units)
    for mode, total in (("contiguous", shards), ("balanced", shards),
                        ("many", shard_count_for("many", len(units), None, chunk))):  # fmt: skip
        timings = {u.key: 1.0 + (u.index % 7) for u in units} if mode == "balanced" else None
        parts = [assign(units, i, total, mode, durations=timings, chunk_size=chunk).units for i in range(total)]
        assert sorted(u.key for part in parts for u in part) == every, mode
    # Contiguous shards of whole cases hold every variant of each case they hold (when the counts divide).
    if shards <= cases and (cases * variants) % (shards * variants) == 0:
        for i in range(shards):
            part = assign(units, i, shards, "contiguous").units
            by_case: dict[str, int] = {}
            for unit in part:
                by_case[unit.case.id] = by_case.get(unit.case.id, 0) + 1
            assert set(by_case.values()) == {variants}


def test_the_example_suites_load(tmp_path: Path) -> None:
    for name in ("demo", "compare"):
        path = Path(evaluator.__file__).parent / "examples" / name / "suite.yaml"
        data = yaml.safe_load(path.read_text())
        assert evaluator.load_suite(path).suite.name == data["name"]
