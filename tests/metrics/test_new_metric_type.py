"""Adding a metric type is one entry in the registry: this test adds one and runs it through everything.

The entry is DeepEval's `ToolPermissionMetric` (deterministic: the share of tool calls a permission policy allows),
which the built-in catalogue does not carry. Declared once, in one decorated options model, it is accepted by the
suite (its options validated, unknown ones refused with the file, line and field), checked at load time (a case
without `tools_called` is exit 2 before any call), built and scored by the engine against a real OpenAI-compatible
server on 127.0.0.1, merged into REPORT.json, shown in the Markdown, JUnit and HTML reports, gated, and given its
row in the README's table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field

from evaluator.metric_registry import readme_table
from evaluator.metric_types import REGISTRY, MetricOptions, metric_type
from tests.helpers import read_records, write_suite

pytestmark = pytest.mark.e2e

ALLOWED = {"id": "allowed", "input": "Find the capital of France.", "tools_called": [{"name": "search"}]}
DENIED = {
    "id": "denied",
    "input": "Close my account.",
    "tools_called": [{"name": "search"}, {"name": "delete_account"}],
}
METRIC = {"type": "tool_permission", "denied_tools": ["delete_account"], "threshold": 1.0}


@pytest.fixture
def tool_permission() -> Iterator[type[MetricOptions]]:
    """The one place: an options model registered as a metric type (removed again after the test)."""

    @metric_type(deepeval="deepeval.metrics:ToolPermissionMetric", needs=("tools_called",), judge=False,
                 doc="`allowed_tools`, `denied_tools` (no judge)")  # fmt: skip
    class ToolPermission(MetricOptions):
        type: Literal["tool_permission"]
        allowed_tools: list[str] | None = None
        denied_tools: list[str] | None = None
        threshold: float = Field(default=1.0, ge=0.0, le=1.0)

        def deepeval_options(self) -> dict[str, Any]:
            return {"allowed_tools": self.allowed_tools, "denied_tools": self.denied_tools}

    try:
        yield ToolPermission
    finally:
        del REGISTRY["tool_permission"]


def test_a_registered_type_runs_through_suite_engine_and_reports(
    tmp_path: Path, tool_permission: type[MetricOptions], stub: str, evaluator_cli
) -> None:
    gate = {"min_pass_rate": 0.8}
    suite = write_suite(tmp_path, [ALLOWED, DENIED], base_url=stub, metrics=[METRIC], judge=None, gate=gate)
    out, report = tmp_path / "out", tmp_path / "REPORT.json"
    done = evaluator_cli("run", str(suite), "--out", str(out))
    assert done.returncode == 0, done.stderr
    records = {r["case_id"]: r for r in read_records(out / "shard-00000" / "results.jsonl")}
    assert records["allowed"]["metrics"]["tool_permission"]["score"] == 1.0
    assert records["denied"]["metrics"]["tool_permission"]["score"] == 0.5
    assert records["denied"]["metrics"]["tool_permission"]["success"] is False
    assert not [c for r in records.values() for c in r["calls"] if c["type"] == "judge"]  # judge=False: none

    assert evaluator_cli("aggregate", str(out), "--out", str(report), "-q").returncode == 0
    merged = json.loads(report.read_text())
    assert merged["problems"] == []
    assert merged["totals"]["cases"] == 2 and merged["totals"]["passed"] == 1
    assert "tool_permission" in json.dumps(merged["metrics"])
    written = {name: tmp_path / name for name in ("report.md", "junit.xml", "report.html")}
    done = evaluator_cli("report", str(report), "--markdown", str(written["report.md"]),
                         "--junit", str(written["junit.xml"]), "--html", str(written["report.html"]))  # fmt: skip
    assert done.returncode == 0, done.stderr
    for path in written.values():
        assert "tool_permission" in path.read_text(encoding="utf-8"), path.name
    assert evaluator_cli("gate", str(report)).returncode == 1  # a pass rate of 0.5 is below the gate's 0.8


def test_a_registered_type_gets_the_load_time_check_and_the_suite_errors(
    tmp_path: Path, tool_permission: type[MetricOptions], evaluator_cli
) -> None:
    no_tools = {"id": "no-tools", "input": "Hello?"}
    suite = write_suite(tmp_path / "a", [ALLOWED, no_tools], metrics=[METRIC], judge=None)
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "a" / "out"))  # the server at :9 is never called
    assert done.returncode == 2, done.stderr
    assert "data.jsonl:2: field 'tools_called': required by metric 'tool_permission' but missing" in done.stderr

    typo = write_suite(tmp_path / "b", [ALLOWED], metrics=[{**METRIC, "denied_tool": ["x"]}], judge=None)
    done = evaluator_cli("run", str(typo), "--out", str(tmp_path / "b" / "out"))
    assert done.returncode == 2 and "field 'metrics.0.denied_tool': Extra inputs are not permitted" in done.stderr


def test_a_registered_type_gets_its_readme_row(tool_permission: type[MetricOptions]) -> None:
    row = "| `tool_permission` | `ToolPermissionMetric` | `tools_called` | `allowed_tools`, `denied_tools` (no judge) |"
    assert row in readme_table().splitlines()


def test_without_the_entry_the_suite_refuses_the_type(tmp_path: Path, evaluator_cli) -> None:
    suite = write_suite(tmp_path, [ALLOWED], metrics=[METRIC], judge=None)
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "Input tag 'tool_permission' found using 'type'" in done.stderr
