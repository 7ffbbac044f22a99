"""The metric registry is the one catalogue: the README's table and the suite's schema are read from it.

The README table is generated (`metric_registry.readme_table`) and compared here, so a metric added, removed or
re-documented in evaluator/metric_types.py without the README (or the other way round) fails. Each row's options
column must name every option its model has, so a new option cannot go undocumented.
"""

from __future__ import annotations

import re

import pytest

from evaluator.metric_registry import readme_table
from evaluator.metric_types import REGISTRY
from tests.helpers import REPO

COMMON = {"type", "name", "threshold"}


def _readme_metric_table() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("| `type` | DeepEval class |")
    return readme[start : readme.index("\n\n", start) + 1]


def test_the_readme_metric_table_is_the_registry() -> None:
    assert _readme_metric_table() == readme_table(), "README.md's metric table is not metric_registry.readme_table()"


@pytest.mark.parametrize("metric_type", sorted(REGISTRY))
def test_every_option_is_in_its_row(metric_type: str) -> None:
    entry = REGISTRY[metric_type]
    documented = set(re.findall(r"`([a-z_]+)`", entry.doc))
    options = {field.alias or name for name, field in entry.options.model_fields.items()} - COMMON
    assert options - {"class"} <= documented, f"{metric_type}: document {sorted(options - documented)}"


def test_the_suite_schema_names_exactly_the_registered_types() -> None:
    from evaluator.suite import Suite

    mapping = Suite.model_json_schema()["properties"]["metrics"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == set(REGISTRY)
