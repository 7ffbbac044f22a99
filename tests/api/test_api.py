"""The public Python API (`import evaluator`): typed, documented, what the CLI calls, and cheap to import."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import evaluator
from evaluator.contract import Report
from evaluator.errors import BadShardError, EvaluatorError, InputError
from tests.helpers import REPO, pre_recorded_run


def test_every_public_function_is_documented_and_typed() -> None:
    for name in evaluator.__all__:
        function = getattr(evaluator, name)
        assert inspect.getdoc(function), f"evaluator.{name} has no docstring"
        signature = inspect.signature(function)
        assert signature.return_annotation is not inspect.Signature.empty, name
        assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name


def test_importing_the_api_does_not_import_deepeval() -> None:
    probe = "import sys, evaluator; print(sorted(m for m in ('deepeval', 'aiohttp', 'plotly') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_shards_aggregate_and_judge_through_the_api(tmp_path: Path) -> None:
    out = pre_recorded_run(tmp_path, 6, 2)
    report = evaluator.aggregate(out, expect_shards=2)
    assert isinstance(report, Report) and report.totals.cases == 6 and report.problems == []
    evaluator.write_report(report, tmp_path / "report.json")
    assert evaluator.load_report(tmp_path / "report.json") == report
    verdict = evaluator.judge(tmp_path / "report.json")
    assert verdict.passed and verdict.label == "PASS"
    # Resuming a complete shard makes no call and changes nothing.
    outcome = evaluator.run_shard(tmp_path / "suite.yaml", out, shard_index=1, total_shards=2, run_id="good")
    assert outcome.evaluated == 0 and outcome.assigned == 3


def test_errors_carry_the_cli_exit_codes(tmp_path: Path) -> None:
    with pytest.raises(InputError) as missing:
        evaluator.load_suite(tmp_path / "nope.yaml")
    assert missing.value.exit_code == 2
    out = pre_recorded_run(tmp_path, 4, 1)
    with pytest.raises(BadShardError) as foreign:
        evaluator.run_shard(tmp_path / "suite.yaml", out, run_id="another-run")
    assert isinstance(foreign.value, EvaluatorError) and foreign.value.exit_code == 3
