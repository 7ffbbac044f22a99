"""Issue 22: the aggregate streams its cases into a gzip sidecar beside REPORT.json (report v5), so REPORT.json is a
summary that does not grow with the run; every reader still gets every case, and older reports still load."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import evaluator
from evaluator.contract import load_report, to_dict
from evaluator.errors import InputError
from tests.helpers import pre_recorded_run, read_records


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pre_recorded_run(tmp_path_factory.mktemp("streams"), 30, 3)


def _aggregate(out: Path, report: Path, evaluator_cli: Any) -> None:
    done = evaluator_cli("aggregate", str(out), "--out", str(report), "-q")
    assert done.returncode == 0, done.stderr


def test_report_json_is_a_summary_and_the_cases_are_in_the_sidecar(
    run: Path, tmp_path: Path, evaluator_cli: Any
) -> None:
    report = tmp_path / "report.json"
    _aggregate(run, report, evaluator_cli)
    content = json.loads(report.read_text())
    assert content["schema"] == "evaluator.report/v5" and "cases" not in content
    sidecar = tmp_path / "report.cases.jsonl.gz"
    assert content["cases_file"]["path"] == sidecar.name and content["cases_file"]["count"] == 30
    lines = gzip.decompress(sidecar.read_bytes()).decode().splitlines()
    assert len(lines) == 30 and {json.loads(line)["shard"] for line in lines} == {0, 1, 2}
    # What load_report gives every reader (gate, report, baseline) is what the in-memory aggregate builds.
    loaded, built = load_report(report), evaluator.aggregate(run)
    assert [c.model_dump() for c in loaded.cases] == [c.model_dump() for c in built.cases]
    assert [c.case_id for c in loaded.cases] == [f"c{i}" for i in range(30)]  # report order: the dataset's
    assert loaded.totals == built.totals and loaded.metrics == built.metrics
    assert evaluator_cli("gate", str(report)).returncode == 0


def test_report_json_does_not_grow_with_the_cases(tmp_path: Path, evaluator_cli: Any) -> None:
    sizes = []
    for cases in (20, 400):
        out = pre_recorded_run(tmp_path / str(cases), cases, 2, run_id="size")
        _aggregate(out, tmp_path / str(cases) / "report.json", evaluator_cli)
        sizes.append((tmp_path / str(cases) / "report.json").stat().st_size)
    assert sizes[1] < sizes[0] * 1.1, f"report.json grew from {sizes[0]} to {sizes[1]} bytes with 20x the cases"


def test_streamed_aggregate_keeps_no_case_in_memory(run: Path, tmp_path: Path) -> None:
    sidecar = tmp_path / "r.cases.jsonl.gz"
    report = evaluator.aggregate(run, cases_to=sidecar)
    assert report.cases == [] and report.cases_file is not None and report.cases_file.count == 30
    evaluator.write_report(report, tmp_path / "r.json")
    assert len(load_report(tmp_path / "r.json").cases) == 30


def test_duplicates_and_rescoring_decided_as_before(run: Path, tmp_path: Path) -> None:
    """Within a shard the last record of a unit wins (a retried error is no duplicate); across shards the first
    shard's, and each duplicate is named with both places."""
    out = tmp_path / "out"
    shutil.copytree(run, out)
    first = out / "shard-00000" / "results.jsonl"
    records = read_records(first)
    errored = {**records[0], "error": {"kind": "timeout", "message": "slow"}, "success": False}
    first.write_text("".join(json.dumps(r) + "\n" for r in [errored, *records]))  # error, then its retry
    other = out / "shard-00001" / "results.jsonl"
    with other.open("a") as handle:
        handle.write(json.dumps({**records[1], "shard_index": 1}) + "\n")  # shard 0's unit again, in shard 1
    report = evaluator.aggregate(out)
    kinds = [p.kind for p in report.problems]
    assert kinds.count("duplicate_case") == 1, report.problems
    (dup,) = [p for p in report.problems if p.kind == "duplicate_case"]
    assert dup.shard == 1 and f"'{records[1]['case_id']}' in shard 1" in dup.message and "and shard 0" in dup.message
    assert len(report.cases) == 30 and report.totals.errored == 0  # the retry stands, the copy is not counted
    assert next(c for c in report.cases if c.case_id == records[1]["case_id"]).shard == 0


def test_a_v4_report_with_inline_cases_still_loads(run: Path, tmp_path: Path, evaluator_cli: Any) -> None:
    built = evaluator.aggregate(run)
    v4 = {k: v for k, v in to_dict(built).items() if k != "cases_file"}
    v4["schema"] = "evaluator.report/v4"
    assert len(v4["cases"]) == 30
    path = tmp_path / "old.json"
    path.write_text(json.dumps(v4))
    loaded = load_report(path)
    assert loaded.schema_version == "evaluator.report/v4" and len(loaded.cases) == 30
    assert evaluator_cli("gate", str(path)).returncode == 0
    done = evaluator_cli("report", str(path), "--markdown", str(tmp_path / "s.md"), "-q")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("damage", ["missing", "other", "truncated"])
def test_a_missing_or_foreign_sidecar_is_an_error_naming_it(
    run: Path, tmp_path: Path, evaluator_cli: Any, damage: str
) -> None:
    report = tmp_path / "report.json"
    _aggregate(run, report, evaluator_cli)
    sidecar = tmp_path / "report.cases.jsonl.gz"
    if damage == "missing":
        sidecar.unlink()
    elif damage == "other":
        sidecar.write_bytes(gzip.compress(gzip.decompress(sidecar.read_bytes())[:-1] + b" \n"))
    else:
        sidecar.write_bytes(sidecar.read_bytes()[:-20])
    with pytest.raises(InputError, match=r"report\.cases\.jsonl\.gz"):
        load_report(report)
    gate = evaluator_cli("gate", str(report))
    assert gate.returncode == 2 and "report.cases.jsonl.gz" in gate.stderr
