"""The evaluator's side of a fan-out over variants (Argo `withParam`, docs/contract.md): `prepare --json` lists
the variants and writes the run's G-Eval steps once; each branch runs one variant into its own folder, sharing
those steps (`--steps-dir`); each candidate's gate takes the reference branch's report as its baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from openai_stub import get_stats, reset_stats, set_controls
from tests.helpers import write_suite

pytestmark = pytest.mark.e2e

VARIANTS = [{"name": "ref", "model": "m-ref"}, {"name": "cand", "model": "m-cand"}]
CRITERIA = {"type": "g_eval", "name": "correct", "criteria": "Is the answer correct?",
            "evaluation_params": ["input", "actual_output", "expected_output"]}  # fmt: skip


def test_one_job_per_variant_shares_the_steps_and_gates_against_the_reference(
    tmp_path: Path, module_stub: str, evaluator_cli: Any
) -> None:
    cases = [{"id": f"c{i:02d}", "input": f"Question {i}?", "expected_output": "ok"} for i in range(30)]
    suite = write_suite(
        tmp_path, cases, base_url=module_stub, metrics=[CRITERIA], variants=VARIANTS,
        gate={"policy": "no_regression", "regression_tolerance": 0.05},
    )  # fmt: skip
    run = tmp_path / "results" / "run1"
    reset_stats(module_stub)
    set_controls(module_stub, quality="m-ref=1.0,m-cand=0.5")
    try:
        done = evaluator_cli("prepare", str(suite), "--out", str(run), "--run-id", "run1", "--json")
        assert done.returncode == 0, done.stderr
        facts = json.loads(done.stdout)
        assert facts["variants"] == ["ref", "cand"] and facts["reference"] == "ref" and facts["units"] == 60
        reports = {}
        for variant in facts["variants"]:  # what `withParam` iterates over
            branch = run / variant
            for index in (0, 1):  # each branch an Indexed Job of 2 completions
                done = evaluator_cli(
                    "run", str(suite), "--variant", variant, "--run-id", "run1", "--steps-dir", str(run),
                    "--out", str(branch), "--shard-index", str(index), "--total-shards", "2",
                )  # fmt: skip
                assert done.returncode == 0, done.stderr
            reports[variant] = run / f"{variant}.json"
            assert evaluator_cli("aggregate", str(branch), "--out", str(reports[variant]), "-q").returncode == 0
    finally:
        set_controls(module_stub, quality="")
    # One steps call for the whole fan-out, then one target and one judge call per unit.
    assert get_stats(module_stub)["total"] == 1 + 60 * 2
    assert not (run / "ref" / "g_eval_steps.json").exists()
    for variant, path in reports.items():
        report = json.loads(path.read_text())
        assert list(report["variants"]) == [variant] and report["totals"]["cases"] == 30
        assert report["g_eval_steps"] == facts["g_eval_steps"]
    done = evaluator_cli("gate", str(reports["cand"]), "--baseline", str(reports["ref"]))
    assert done.returncode == 1
    assert "regression: cand vs baseline run1 ref: correct: difference -0." in done.stderr
    done = evaluator_cli("gate", str(reports["ref"]), "--baseline", str(reports["ref"]))
    # the reference's own branch against itself answers only for its problems and error budget
    assert done.returncode == 0, done.stderr
    assert "ref is the baseline itself (run run1): nothing to compare" in done.stdout
    other = (
        run / "copy.json"
    )  # beside ref.json and its cases file; the same answers from another run are a comparison: 30 ties show nothing yet
    other.write_text(reports["ref"].read_text().replace('"run_id": "run1"', '"run_id": "run0"'))
    done = evaluator_cli("gate", str(reports["ref"]), "--baseline", str(other))
    assert done.returncode == 1 and "regression:" not in done.stderr, done.stderr
    assert (
        "? inconclusive: ref vs baseline run0 ref: correct" in done.stderr
        and "more cases would decide it" in done.stderr
    )
