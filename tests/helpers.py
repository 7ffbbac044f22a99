"""Helpers shared by tests: write suites, make cases, read shard records, load a script as a module."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from evaluator.contract import ReportCase

REPO = Path(__file__).resolve().parent.parent


def load_module(path: Path, name: str) -> ModuleType:
    """A Python file that is not an importable module (a hyphenated script, a stand-in, a `__main__.py`), loaded
    under `name`; code under `if __name__ == "__main__"` does not run."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_suite(
    folder: Path,
    cases: list[dict[str, Any]],
    *,
    base_url: str = "http://127.0.0.1:9/v1",
    metrics: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> Path:
    """A suite + JSONL dataset in `folder`; returns the suite path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    suite: dict[str, Any] = {
        "name": "t",
        "dataset": "data.jsonl",
        "target": {"base_url": base_url, "model": "stub-model"},
        "judge": {"base_url": base_url, "model": "stub-model", "structured_output": "json_schema"},
        "metrics": metrics or [{"type": "answer_relevancy", "threshold": 0.5}],
        "gate": {"min_pass_rate": 0.5, "error_budget": 0.05},
        "concurrency": {"max_calls_per_endpoint": 16, "backoff_base_s": 0.05, "backoff_max_s": 0.5},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(suite.get(key), dict):
            suite[key] = {**suite[key], **value}
        else:
            suite[key] = value
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def cases(count: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"id": f"c{i:04d}", "input": f"question {i}?", "expected_output": "ok", **fields} for i in range(count)]


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def pre_recorded_run(folder: Path, n_cases: int, shards: int, run_id: str = "good") -> Path:
    """Real shards (the real CLI) of a suite with pre-recorded, passing answers: no server needed."""
    from click.testing import CliRunner

    from evaluator.cli import main

    data = [{"id": f"c{i}", "input": f"q{i}", "expected_output": "a", "actual_output": "a"} for i in range(n_cases)]
    suite = write_suite(folder, data, metrics=[{"type": "exact_match"}], target=None, judge=None)
    for index in range(shards):
        args = ["run", str(suite), "--out", str(folder / "out"), "--shard-index", str(index)]
        result = CliRunner().invoke(main, [*args, "--total-shards", str(shards), "--run-id", run_id])
        assert result.exit_code == 0, result.output
    return folder / "out"


def read_report_json(path: Path) -> dict[str, Any]:
    """A REPORT.json as its raw JSON, with `cases` read back from its sidecar (report v5 keeps them in
    `REPORT.cases.jsonl.gz`, which `cases_file` names): what a tool reading the files, not the models, sees."""
    import gzip

    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if report.get("cases_file"):
        lines = gzip.decompress((path.parent / report["cases_file"]["path"]).read_bytes()).splitlines()
        report["cases"] = [json.loads(line) for line in lines]
    return report


def report_case(case_id: str, variant: str, score: float | None, *, error: bool = False) -> ReportCase:
    """A report's case `c<N>` of `variant` with one metric `m` (threshold 0.5), or a timeout without metrics."""
    from evaluator.contract import ErrorInfo, MetricResult, ReportCase

    metrics = {} if error else {"m": MetricResult(score=score, threshold=0.5, success=(score or 0) >= 0.5)}
    return ReportCase(
        variant=variant, case_id=case_id, case_index=int(case_id[1:]), input="q", metrics=metrics, calls=[],
        success=not error and (score or 0) >= 0.5, error=ErrorInfo(kind="timeout", message="t") if error else None,
        duration_s=0.1, started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:01+00:00", shard=0,
    )  # fmt: skip
