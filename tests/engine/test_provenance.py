"""Provenance: what produced the numbers (evaluator, DeepEval and Python versions, image, target and judge models
with the revision the server reports) is in every manifest and the report; a shard or a baseline that differs is
named, and a different judge or DeepEval version makes `no_regression` INCONCLUSIVE unless allowed."""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

import pytest

import evaluator
from openai_stub.server import run_stub_in_process
from tests.helpers import cases, pre_recorded_run, write_suite

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.e2e
def test_manifests_and_the_report_record_provenance(tmp_path: Path, evaluator_cli: Any) -> None:
    root = f"/models/hub/models--org--judge/snapshots/{SHA}"
    base_url, stop = run_stub_in_process(model="judge-m", root=root, max_model_len=4096)
    try:
        suite = write_suite(tmp_path, cases(3), base_url=base_url, target={"model": "target-m"},
                            judge={"model": "judge-m"})  # fmt: skip
        out = tmp_path / "out"
        done = evaluator_cli("run", str(suite), "--out", str(out), env={"EVAL_IMAGE": "registry.local/evaluator:abc"})
        assert done.returncode == 0, done.stderr
    finally:
        stop()
    provenance = json.loads((out / "shard-00000" / "manifest.json").read_text())["provenance"]
    assert provenance["evaluator_version"] == evaluator.__version__
    assert provenance["deepeval_version"] == importlib.metadata.version("deepeval")
    assert provenance["python_version"] == platform.python_version()
    assert provenance["image"] == "registry.local/evaluator:abc"
    judge = provenance["judge"]
    assert judge["model"] == "judge-m" and judge["listed"] is True
    assert judge["root"] == root and judge["revision"] == SHA and judge["max_model_len"] == 4096
    target = provenance["targets"]["default"]
    assert target["model"] == "target-m" and target["listed"] is False and target["revision"] is None
    report = evaluator.aggregate(out)
    assert report.provenance is not None and report.provenance.model_dump(mode="json") == provenance
    assert report.notes == []


def _reports(tmp_path: Path, shards: int = 1) -> tuple[Path, dict[str, Any]]:
    out = pre_recorded_run(tmp_path, 40, shards)
    report = evaluator.aggregate(out)
    content = json.loads(evaluator.contract.to_json(report))
    content["gate"]["regression_tolerance"] = 0.3
    path = tmp_path / "report.json"
    path.write_text(json.dumps(content))
    return path, content


def _with(content: dict[str, Any], path: Path, change: Any) -> Path:
    changed = json.loads(json.dumps(content))
    change(changed["provenance"])
    path.write_text(json.dumps(changed))
    return path


JUDGE = {"model": "judge-m", "listed": True, "root": "/models/judge", "revision": SHA, "max_model_len": 4096}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda p: p.update(judge=JUDGE | {"revision": "f" * 40}), "judge revision"),
        (lambda p: p.update(judge=JUDGE | {"model": "another-judge"}), "judge model"),
        (lambda p: p.update(deepeval_version="4.2.0"), "DeepEval"),
    ],
    ids=["judge-revision", "judge-model", "deepeval"],
)
def test_a_baseline_judged_otherwise_is_inconclusive(
    tmp_path: Path, evaluator_cli: Any, change: Any, named: str
) -> None:
    path, content = _reports(tmp_path)
    _with(content, path, lambda p: p.update(judge=JUDGE))
    baseline = _with(content, tmp_path / "baseline.json", lambda p: (p.update(judge=JUDGE), change(p)))
    args = ("gate", str(path), "--baseline", str(baseline), "--policy", "no_regression")
    blocked = evaluator_cli(*args)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "INCONCLUSIVE" in blocked.stderr and named in blocked.stderr, blocked.stderr
    allowed = evaluator_cli(*args, "--allow-mixed-versions")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert named in allowed.stdout  # still said, as a note


def test_a_baseline_of_another_image_or_target_is_a_note(tmp_path: Path, evaluator_cli: Any) -> None:
    path, content = _reports(tmp_path)
    baseline = _with(content, tmp_path / "baseline.json", lambda p: p.update(image="other:1", python_version="3.12.0"))
    done = evaluator_cli("gate", str(path), "--baseline", str(baseline), "--policy", "no_regression")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "image" in done.stdout and "other:1" in done.stdout and "Python" in done.stdout


def test_shards_of_mixed_versions_are_named_and_make_no_regression_inconclusive(
    tmp_path: Path, evaluator_cli: Any
) -> None:
    out = pre_recorded_run(tmp_path, 40, 2)
    manifest_path = out / "shard-00001" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["provenance"]["deepeval_version"] = "4.2.0"
    manifest_path.write_text(json.dumps(manifest))
    report = evaluator.aggregate(out)
    assert report.problems == []  # nothing lost or damaged: a version is a note, not a problem
    assert any("shard 1" in note and "DeepEval 4.2.0" in note for note in report.notes), report.notes
    path = tmp_path / "report.json"
    content = json.loads(evaluator.contract.to_json(report))
    content["gate"]["regression_tolerance"] = 0.3
    path.write_text(json.dumps(content))
    args = ("gate", str(path), "--baseline", str(path), "--policy", "no_regression")
    blocked = evaluator_cli(*args)
    assert blocked.returncode == 1 and "DeepEval" in blocked.stderr, blocked.stdout + blocked.stderr
    assert evaluator_cli(*args, "--allow-mixed-versions").returncode == 0


def test_older_reports_without_provenance_still_gate(tmp_path: Path, evaluator_cli: Any) -> None:
    path, content = _reports(tmp_path)
    older = json.loads(json.dumps(content))
    for key in ("provenance", "notes"):
        older.pop(key)
    older["schema"] = "evaluator.report/v3"
    (tmp_path / "old.json").write_text(json.dumps(older))
    done = evaluator_cli("gate", str(path), "--baseline", str(tmp_path / "old.json"), "--policy", "no_regression")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "records no provenance" in done.stdout
