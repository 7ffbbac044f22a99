"""Profiles (seed 001 section 1): a small fixed-seed sample stratified by tag on every pull request, everything at
night. The same suite run as `pr` and `nightly` selects the documented cases (the same sample for the same seed,
in any process), the report records which profile and which sample ran, and a baseline of another profile is
compared only on the cases both runs share, said plainly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import evaluator
from evaluator.selection import allocate
from tests.helpers import REPO, read_report_json, write_suite

EXAMPLE = REPO / "evaluator" / "examples" / "compare" / "suite.yaml"
# docs/contract.md documents this selection; the test holds the code and the page to it.
SMOKE = ["units-009", "comparison-052", "multiplication-001", "addition-037", "spelling-014"]


@pytest.mark.parametrize(
    ("sizes", "sample", "expected"),
    [
        ({"a": 6, "b": 3, "c": 1}, 4, {"a": 2, "b": 1, "c": 1}),  # quotas 2.4/1.2/0.4; c floored to 0, then 1
        ({"a": 6, "b": 3, "c": 1}, 2, {"a": 1, "b": 1, "c": 0}),  # fewer than the strata: 1.2/0.6/0.2, remainder to b
        ({"a": 60, "b": 60, "c": 60, "d": 60, "e": 60}, 30, {"a": 6, "b": 6, "c": 6, "d": 6, "e": 6}),
        ({"a": 5, "b": 4}, 4, {"a": 2, "b": 2}),  # quotas 2.22/1.78: largest remainder goes to b
        ({"a": 3, "b": 3, "c": 3}, 4, {"a": 2, "b": 1, "c": 1}),  # equal remainders: by name
        ({"a": 2, "b": 1}, 10, {"a": 2, "b": 1}),  # a sample above the pool takes everything
    ],
)
def test_allocation_is_proportional_with_largest_remainders_and_one_per_stratum(
    sizes: dict[str, int], sample: int, expected: dict[str, int]
) -> None:
    assert allocate(sizes, sample) == expected


def test_the_example_profiles_select_the_documented_cases() -> None:
    loaded = evaluator.load_suite(EXAMPLE)
    everything = evaluator.plan_run(loaded, profile="nightly")
    pr = evaluator.plan_run(loaded, profile="pr")
    smoke = evaluator.plan_run(loaded, profile="smoke")
    assert len(everything.cases) == 300 and len(everything.units) == 900
    assert [c.id for c in smoke.cases] == SMOKE
    assert ", ".join(f"`{case}`" for case in SMOKE) in (REPO / "docs" / "contract.md").read_text()
    # pr: 30 cases, 6 of each family (the first tag), in dataset order, all of them nightly cases.
    assert len(pr.cases) == 30 and len(pr.units) == 90
    assert Counter(c.tags[0] for c in pr.cases) == {f: 6 for f in ("addition", "multiplication", "comparison",
                                                                   "spelling", "units")}  # fmt: skip
    positions = [c.index for c in pr.cases]
    assert positions == sorted(positions) and {c.id for c in pr.cases} <= {c.id for c in everything.cases}
    assert pr.selection.info.selection_sha256 != everything.selection.info.selection_sha256


def test_the_same_seed_gives_the_same_sample_in_another_process() -> None:
    """String hashing is randomized per process (PYTHONHASHSEED); the sample must not depend on it."""
    probe = (
        "import evaluator; loaded = evaluator.load_suite('evaluator/examples/compare/suite.yaml'); "
        "print(','.join(c.id for c in evaluator.plan_run(loaded, profile='pr').cases))"
    )
    runs = [
        subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("1", "2")
    ]  # fmt: skip
    here = ",".join(c.id for c in evaluator.plan_run(evaluator.load_suite(EXAMPLE), profile="pr").cases)
    assert runs[0] == runs[1] == here


CASES = [
    {"id": f"c{i:02d}", "input": f"q{i}", "expected_output": "a", "actual_output": "a" if i % 5 else "b",
     "tags": ["easy" if i < 12 else "hard"]}
    for i in range(20)
]  # fmt: skip
PROFILES = {"pr": {"sample": 5, "seed": 3}, "nightly": {}, "hard": {"tags": ["hard"]}}


def _suite(folder: Path) -> Path:
    return write_suite(
        folder, CASES, metrics=[{"type": "exact_match"}], target=None, judge=None, profiles=PROFILES,
        gate={"min_pass_rate": 0.5, "regression_tolerance": 0.1},
    )  # fmt: skip


def _run(evaluator_cli: Any, suite: Path, out: Path, *flags: str, env: dict[str, str] | None = None) -> Path:
    done = evaluator_cli("run", str(suite), "--out", str(out), *flags, env=env)
    assert done.returncode == 0, done.stderr
    report = out.parent / f"{out.name}.json"
    assert evaluator_cli("aggregate", str(out), "--out", str(report), "-q").returncode == 0
    return report


def test_run_as_pr_and_nightly_records_the_profile_and_sample(tmp_path: Path, evaluator_cli: Any) -> None:
    suite = _suite(tmp_path)
    pr = read_report_json(_run(evaluator_cli, suite, tmp_path / "pr", "--profile", "pr"))
    # The profile reaches the run from the environment too (what the pipelines set).
    nightly = json.loads(_run(evaluator_cli, suite, tmp_path / "nightly", env={"EVAL_PROFILE": "nightly"}).read_text())
    hard = read_report_json(_run(evaluator_cli, suite, tmp_path / "hard", "--profile", "hard"))
    planned = evaluator.plan_run(evaluator.load_suite(suite), profile="pr")
    assert [c["case_id"] for c in pr["cases"]] == [c.id for c in planned.cases]
    assert pr["profile"] == {
        "name": "pr", "tags": None, "sample": 5, "seed": 3, "dataset_cases": 20, "selected_cases": 5,
        "selection_sha256": planned.selection.info.selection_sha256, "limit": None,
    }  # fmt: skip
    assert Counter(c["case_id"] < "c12" for c in pr["cases"]) == {True: 3, False: 2}  # 12 easy, 8 hard: 3 + 2
    assert nightly["profile"]["name"] == "nightly" and nightly["totals"]["cases"] == 20
    assert [c["case_id"] for c in hard["cases"]] == [f"c{i}" for i in range(12, 20)]
    assert pr["run_id"].endswith("-pr") and nightly["run_id"].endswith("-nightly")  # different runs


def test_a_pr_report_against_a_nightly_baseline_compares_the_shared_cases_said_plainly(
    tmp_path: Path, evaluator_cli: Any
) -> None:
    suite = _suite(tmp_path)
    pr = _run(evaluator_cli, suite, tmp_path / "pr", "--profile", "pr")
    nightly = _run(evaluator_cli, suite, tmp_path / "nightly", "--profile", "nightly")
    done = evaluator_cli("gate", str(pr), "--baseline", str(nightly), "--policy", "no_regression")
    notice = "not like with like: this run is profile 'pr' (5 cases), the baseline"
    assert (
        notice in done.stdout and "profile 'nightly' (20 cases): compared on the 5 shared case(s) only" in done.stdout
    )
    # equal answers on 5 shared cases cannot show there is no regression: INCONCLUSIVE (fail closed), and how many
    # more cases would show it
    assert done.returncode == 1 and "more cases would decide it" in done.stderr, done.stdout + done.stderr
    md = tmp_path / "pr.md"
    assert evaluator_cli("report", str(pr), "--baseline", str(nightly), "--markdown", str(md)).returncode == 0
    assert notice in md.read_text()
    # A baseline that shares no case is not compared at all, and says so.
    other = write_suite(tmp_path / "other", [{**c, "id": f"x{c['id']}"} for c in CASES],
                        metrics=[{"type": "exact_match"}], target=None, judge=None)  # fmt: skip
    foreign = _run(evaluator_cli, other, tmp_path / "other" / "out")
    done = evaluator_cli("gate", str(pr), "--baseline", str(foreign), "--policy", "no_regression")
    assert "the baseline shares no case with this run: nothing was compared" in done.stdout
    assert "no reference to compare with" in done.stdout  # decided on the absolute thresholds instead


def test_an_unknown_profile_or_variant_is_exit_2(tmp_path: Path, evaluator_cli: Any) -> None:
    suite = _suite(tmp_path)
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "o"), "--profile", "weekly")
    assert done.returncode == 2 and "unknown profile 'weekly' (the suite's profiles: hard, nightly, pr)" in done.stderr
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "o"), "--variant", "nope")
    assert done.returncode == 2 and "unknown variant 'nope' (the suite's variants: default)" in done.stderr
    empty = write_suite(tmp_path / "e", CASES, metrics=[{"type": "exact_match"}], target=None, judge=None,
                        profiles={"rare": {"tags": ["rare"]}})  # fmt: skip
    done = evaluator_cli("run", str(empty), "--out", str(tmp_path / "o"), "--profile", "rare")
    assert done.returncode == 2 and "profile 'rare' selects no case" in done.stderr
