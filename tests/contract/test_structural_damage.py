"""Structural damage is a recorded problem in `aggregate` and exit 2 naming file and field in `gate`/`report`.

Line-level damage (torn, corrupt lines) is covered in tests/engine/test_aggregate_fails_closed.py; these are
files that parse as JSON, carry the right schema tag and still have the wrong shape: a manifest missing keys, an
error that is a string, a score that is not a number, a list for an id, a report whose gate or totals are not
what the gate reads. None of them may end in a traceback or in exit 1 ("quality failed").
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import pre_recorded_run

Json = dict[str, Any]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real shards of a suite with pre-recorded answers (no server needed), all passing."""
    return pre_recorded_run(tmp_path_factory.mktemp("good"), 6, 2)


@pytest.fixture
def run_copy(good_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(good_run, tmp_path / "out")
    return tmp_path / "out"


def _edit_manifest(out: Path, change: Callable[[Json], None]) -> Path:
    path = out / "shard-00001" / "manifest.json"
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))
    return path


def _edit_first_record(out: Path, change: Callable[[Json], None]) -> Path:
    """Changes line 1 of shard 0's results and re-vouches for the file (as if written so), so only the shape is
    wrong: no checksum mismatch hides the structural problem."""
    from hashlib import sha256

    path = out / "shard-00000" / "results.jsonl"
    lines = path.read_bytes().split(b"\n")
    record = json.loads(lines[0])
    change(record)
    lines[0] = json.dumps(record).encode()
    path.write_bytes(b"\n".join(lines))
    manifest_path = out / "shard-00000" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["results_sha256"] = sha256(path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    return path


def _aggregate(out: Path, evaluator_cli) -> tuple[Json, str, int]:
    report = out.parent / "report.json"
    done = evaluator_cli("aggregate", str(out), "--out", str(report), "-q")
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 0, done.stderr  # the report is written, with the damage recorded in it
    gate = evaluator_cli("gate", str(report))
    assert "Traceback" not in gate.stdout + gate.stderr
    return json.loads(report.read_text()), gate.stderr, gate.returncode


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda m: m.pop("counts"), "counts"),
        (lambda m: m.pop("total_shards"), "total_shards"),
        (lambda m: m.update(case_ids="c3"), "case_ids"),
    ],
    ids=["missing-counts", "missing-total-shards", "case-ids-a-string"],
)
def test_manifest_with_the_schema_tag_but_the_wrong_shape(run_copy: Path, evaluator_cli, damage, field: str) -> None:
    path = _edit_manifest(run_copy, damage)
    report, stderr, code = _aggregate(run_copy, evaluator_cli)
    assert code == 1  # the gate refuses it: fail closed
    invalid = [p for p in report["problems"] if p["kind"] == "invalid_manifest"]
    assert len(invalid) == 1 and invalid[0]["file"] == str(path) and invalid[0]["shard"] == 1
    assert invalid[0]["field"] == field and f"field '{field}'" in invalid[0]["message"]
    assert report["shards"]["incomplete"] == [1]
    assert "invalid_manifest" in stderr


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda r: r.update(error="boom"), "error"),
        (lambda r: r["metrics"]["exact_match"].update(score="high"), "metrics.exact_match.score"),
        (lambda r: r.update(case_id=["c0"]), "case_id"),
        (lambda r: r.update(success="yes"), "success"),
        (lambda r: r["calls"].append({"type": "judge"}), "calls[0].latency_s"),
    ],
    ids=["error-a-string", "score-not-a-number", "case-id-a-list", "success-a-string", "call-missing-latency"],
)
def test_result_record_with_the_wrong_shape(run_copy: Path, evaluator_cli, damage, field: str) -> None:
    path = _edit_first_record(run_copy, damage)
    report, stderr, code = _aggregate(run_copy, evaluator_cli)
    assert code == 1
    invalid = [p for p in report["problems"] if p["kind"] == "invalid_record"]
    assert len(invalid) == 1
    assert invalid[0]["file"] == str(path) and invalid[0]["line"] == 1 and invalid[0]["field"] == field
    assert "missing_case" in {p["kind"] for p in report["problems"]}  # and the case is not silently counted
    assert report["totals"]["cases"] == 5
    assert "invalid_record" in stderr


@pytest.fixture
def report_file(good_run: Path, tmp_path: Path, evaluator_cli) -> Path:
    path = tmp_path / "report.json"
    assert evaluator_cli("aggregate", str(good_run), "--out", str(path), "-q").returncode == 0
    assert evaluator_cli("gate", str(path)).returncode == 0
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: r["gate"].update(min_pass_rate="high"), "field 'gate.min_pass_rate'"),
        (lambda r: r["gate"].update(mode="maybe"), "field 'gate.mode'"),
        (lambda r: r["totals"].update(error_rate="x"), "field 'totals.error_rate'"),
        (lambda r: r.update(problems="none"), "field 'problems'"),
        (lambda r: r["metrics"]["exact_match"].update(pass_rate=[1]), "field 'metrics.exact_match.pass_rate'"),
        (lambda r: r.pop("totals"), "missing field 'totals'"),
        (lambda r: r.update(cases={}), "field 'cases'"),
    ],
    ids=[
        "gate-rate-a-string",
        "gate-mode",
        "error-rate-a-string",
        "problems-a-string",
        "pass-rate-a-list",
        "no-totals",
        "cases-an-object",
    ],
)
def test_gate_and_report_exit_2_naming_file_and_field(report_file: Path, evaluator_cli, damage, message: str) -> None:
    content = json.loads(report_file.read_text())
    damage(content)
    report_file.write_text(json.dumps(content))
    for command in (["gate", str(report_file)], ["report", str(report_file)]):
        done = evaluator_cli(*command)
        output = done.stdout + done.stderr
        assert "Traceback" not in output
        assert done.returncode == 2, output
        assert str(report_file) in output and message in output


def test_a_v1_report_still_loads_and_a_newer_one_is_named(report_file: Path, evaluator_cli) -> None:
    content = json.loads(report_file.read_text())
    for shard in content["shards"]["per_shard"]:
        shard.pop("endpoints")  # what a v1 aggregate wrote
    for problem in content["problems"]:
        problem.pop("field")
    content["schema"] = "evaluator.report/v1"
    report_file.write_text(json.dumps(content))
    assert evaluator_cli("gate", str(report_file)).returncode == 0
    content["schema"] = "evaluator.report/v9"
    report_file.write_text(json.dumps(content))
    done = evaluator_cli("gate", str(report_file))
    assert done.returncode == 2 and "written by a newer evaluator" in done.stderr
