"""A run with a missing, duplicated, truncated or foreign shard can never pass the gate; the reason is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import pre_recorded_run, write_suite


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four real shards of a suite with pre-recorded answers (no server needed), all passing."""
    return pre_recorded_run(tmp_path_factory.mktemp("good"), 20, 4)


def aggregate_and_gate(out: Path, evaluator_cli, *extra: str) -> tuple[dict, str, int]:
    report = out.parent / "report.json"
    done = evaluator_cli("aggregate", str(out), "--out", str(report), "-q", *extra)
    assert done.returncode == 0, done.stderr
    gate = evaluator_cli("gate", str(report))
    return json.loads(report.read_text()), gate.stderr, gate.returncode


@pytest.fixture
def run_copy(good_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(good_run, tmp_path / "out")
    return tmp_path / "out"


def test_intact_run_passes(run_copy: Path, evaluator_cli) -> None:
    report, _, code = aggregate_and_gate(run_copy, evaluator_cli, "--expect-shards", "4")
    assert code == 0 and report["problems"] == [] and report["totals"]["cases"] == 20


def test_missing_shard(run_copy: Path, evaluator_cli) -> None:
    shutil.rmtree(run_copy / "shard-00002")
    report, stderr, code = aggregate_and_gate(run_copy, evaluator_cli, "--expect-shards", "4")
    assert code == 1
    assert report["shards"]["missing"] == [2]
    assert "missing_shard: shard 2 of 4 produced no folder" in stderr


def test_missing_last_shard_is_caught_from_the_manifests(run_copy: Path, evaluator_cli) -> None:
    shutil.rmtree(run_copy / "shard-00003")
    report, stderr, code = aggregate_and_gate(run_copy, evaluator_cli)
    assert code == 1 and report["shards"]["missing"] == [3]


def test_killed_shard_without_manifest(run_copy: Path, evaluator_cli) -> None:
    (run_copy / "shard-00001" / "manifest.json").unlink()
    report, stderr, code = aggregate_and_gate(run_copy, evaluator_cli)
    assert code == 1 and report["shards"]["incomplete"] == [1]
    assert "incomplete_shard" in stderr


def test_duplicate_case_across_shards(run_copy: Path, evaluator_cli) -> None:
    line = (run_copy / "shard-00000" / "results.jsonl").read_text().splitlines()[0]
    with (run_copy / "shard-00003" / "results.jsonl").open("a") as handle:
        handle.write(line + "\n")
    report, stderr, code = aggregate_and_gate(run_copy, evaluator_cli)
    assert code == 1
    kinds = {p["kind"] for p in report["problems"]}
    assert "duplicate_case" in kinds and "checksum_mismatch" in kinds
    assert "duplicate_case: case 'c0' in shard 3" in stderr
    assert report["totals"]["cases"] == 20  # counted once


def test_truncated_line(run_copy: Path, evaluator_cli) -> None:
    path = run_copy / "shard-00002" / "results.jsonl"
    path.write_bytes(path.read_bytes()[:-25])
    report, stderr, code = aggregate_and_gate(run_copy, evaluator_cli)
    assert code == 1
    truncated = [p for p in report["problems"] if p["kind"] == "truncated_line"]
    assert truncated and truncated[0]["line"] == 5 and truncated[0]["file"].endswith("shard-00002/results.jsonl")


def test_corrupt_line_in_the_middle(run_copy: Path, evaluator_cli) -> None:
    path = run_copy / "shard-00001" / "results.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:30] + "#garbage#" + lines[1][30:]
    path.write_text("\n".join(lines) + "\n")
    report, stderr, code = aggregate_and_gate(run_copy, evaluator_cli)
    assert code == 1
    corrupt = [p for p in report["problems"] if p["kind"] == "corrupt_line"]
    assert corrupt[0]["line"] == 2 and corrupt[0]["shard"] == 1
    assert "missing_case" in {p["kind"] for p in report["problems"]}


def test_mixed_run_ids(run_copy: Path, evaluator_cli) -> None:
    for name in ("results.jsonl", "manifest.json"):
        path = run_copy / "shard-00003" / name
        path.write_text(path.read_text().replace('"good"', '"other"'))
    manifest_path = run_copy / "shard-00003" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    from evaluator.results import file_sha256

    manifest["results_sha256"] = file_sha256(run_copy / "shard-00003" / "results.jsonl")
    manifest_path.write_text(json.dumps(manifest))
    report, stderr, code = aggregate_and_gate(run_copy, evaluator_cli)
    assert code == 1
    assert "mixed_run_id: shards belong to different runs: good, other" in stderr


def test_shard_count_disagreement(run_copy: Path, evaluator_cli) -> None:
    report, stderr, code = aggregate_and_gate(run_copy, evaluator_cli, "--expect-shards", "5")
    assert code == 1 and report["shards"]["missing"] == [4]
    assert "mixed_shard_count" in stderr


def test_gate_refuses_a_hand_edited_report(run_copy: Path, evaluator_cli, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    assert evaluator_cli("aggregate", str(run_copy), "--out", str(report_path), "-q").returncode == 0
    report_path.write_text('{"schema": "something-else"}')
    done = evaluator_cli("gate", str(report_path))
    assert done.returncode == 2 and "not an evaluator report" in done.stderr


def test_resume_refuses_a_folder_of_another_run(run_copy: Path, evaluator_cli, good_run: Path) -> None:
    suite = good_run.parent / "suite.yaml"
    done = evaluator_cli(
        "run", str(suite), "--out", str(run_copy), "--shard-index", "0", "--total-shards", "4", "--run-id", "new"
    )
    assert done.returncode == 3
    assert "field 'run_id' is 'good', this run has 'new'" in done.stderr


def test_gate_blocks_a_regression_against_the_baseline(good_run: Path, tmp_path: Path, evaluator_cli) -> None:
    baseline = tmp_path / "baseline.json"
    assert evaluator_cli("aggregate", str(good_run), "--out", str(baseline), "-q").returncode == 0
    data = [{"id": f"c{i}", "input": f"q{i}", "expected_output": "a", "actual_output": "a" if i >= 2 else "b"}
            for i in range(20)]  # fmt: skip
    suite = write_suite(tmp_path / "new", data, metrics=[{"type": "exact_match"}], target=None, judge=None,
                        gate={"min_pass_rate": 0.5, "regression_tolerance": 0.05})  # fmt: skip
    out = tmp_path / "new" / "out"
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    current = tmp_path / "current.json"
    assert evaluator_cli("aggregate", str(out), "--out", str(current), "-q").returncode == 0
    assert evaluator_cli("gate", str(current)).returncode == 0  # 90% pass: fine on its own
    gated = evaluator_cli("gate", str(current), "--baseline", str(baseline))
    assert gated.returncode == 1  # 2 of 20 cases flipped: a drop of 0.1 that 20 cases cannot show, nor rule out
    assert "? inconclusive: default vs baseline" in gated.stderr and ": exact_match: difference -0.100" in gated.stderr
