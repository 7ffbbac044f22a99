"""The gate's two policies on exact intervals, and what INCONCLUSIVE does (documented in docs/contract.md):

- a regression only when the difference's interval lies entirely below -tolerance; no regression when entirely
  above; INCONCLUSIVE otherwise, with the number of cases that would decide it;
- INCONCLUSIVE fails closed: exit 1 in block mode; `gate.inconclusive: warn` lets it through with a WARN line
  (exit 0); `--mode block` blocks on it whatever the suite says (the strict reading gate.sh takes); `--mode warn`
  lets nothing block; a failure beside it makes the verdict FAIL;
- `no_regression` with nothing to compare with falls back to the absolute thresholds and says so, and without a
  tolerance it is a usage error (exit 2), in the suite file and on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import evaluator
from evaluator.contract import Difference, PairComparison, Report
from evaluator.gate import Verdict, apply_gate, decide
from evaluator.suite import Gate
from tests.helpers import pre_recorded_run, write_suite


def _diff(estimate: float, low: float, high: float, n: int = 300) -> Difference:
    return Difference(n=n, reference_mean=0.8, candidate_mean=0.8 + estimate, difference=estimate, ci_low=low,
                      ci_high=high, wins=0, ties=n, losses=0, p_value=1.0)  # fmt: skip


def _pair(index: int, diff: Difference) -> PairComparison:
    return PairComparison(reference="ref", candidate=f"cand{index}", cases=diff.n, metrics={"m": diff},
                          pass_rate=_diff(0, 0, 0), flipped_to_fail=[], flipped_to_pass=[], confidence=0.95,
                          resamples=2000, seed=0)  # fmt: skip


def _read(*diffs: Difference) -> Verdict:
    """The gate's reading of given intervals (each a metric of its own candidate), tolerance 0.03."""
    verdict = Verdict(passed=True, mode="block")
    for index, diff in enumerate(diffs):
        decide(_pair(index, diff), "m", diff, 0.03, verdict)
    return verdict


def test_the_three_readings_of_an_interval() -> None:
    assert _read(_diff(-0.01, -0.02, 0.0)).status == "pass"
    failed = _read(_diff(-0.10, -0.14, -0.06))
    assert failed.status == "fail" and failed.blocks and failed.label == "FAIL"
    assert failed.reasons == [
        "regression: cand0 vs ref: m: difference -0.100 (95% CI -0.140 .. -0.060, n=300), tolerance 0.03"
    ]
    undecided = _read(_diff(-0.02, -0.037, -0.003))
    assert undecided.status == "inconclusive" and undecided.label == "INCONCLUSIVE" and not undecided.passed
    # the lower arm 0.017 must shrink to the 0.01 between the estimate and -0.03: n * (0.017/0.01)^2 = 867 in all
    assert undecided.inconclusive == [
        "inconclusive: cand0 vs ref: m: difference -0.020 (95% CI -0.037 .. -0.003, n=300), tolerance 0.03: "
        "568 more cases would decide it"
    ]
    on_the_line = _read(_diff(-0.03, -0.05, -0.01))
    assert "no number of cases would decide it at this difference" in on_the_line.inconclusive[0]
    both = _read(_diff(-0.10, -0.14, -0.06), _diff(-0.02, -0.037, -0.003))
    assert both.status == "fail" and len(both.reasons) == 1 and len(both.inconclusive) == 1


def _report(tmp_path: Path, **gate: Any) -> Report:
    """A real aggregate (pre-recorded answers) turned into two variants that answered 10 cases alike: 10 ties
    cannot show that a drop of 0.03 is ruled out, so the gate says INCONCLUSIVE."""
    base = evaluator.aggregate(pre_recorded_run(tmp_path, 10, 2))
    cases = [c.model_copy(update={"variant": name}) for name in ("ref", "cand0") for c in base.cases]
    settings = {"policy": "no_regression", "regression_tolerance": 0.03, **gate}
    return base.model_copy(update={"cases": cases, "variants": {}, "reference": "ref", "gate": Gate(**settings)})


@pytest.mark.parametrize(
    ("suite_says", "flags", "code", "line"),
    [
        ({}, [], 1, "INCONCLUSIVE: run good: 0 failure(s), 2 inconclusive"),
        ({"inconclusive": "warn"}, [], 0, "WARN: gate INCONCLUSIVE (0 failure(s), 2 inconclusive); not blocking"),
        ({"inconclusive": "warn"}, ["--mode", "block"], 1, "INCONCLUSIVE: run good"),
        ({"mode": "warn"}, [], 0, "WARN: gate INCONCLUSIVE"),
        ({}, ["--mode", "warn"], 0, "WARN: gate INCONCLUSIVE"),
    ],
)
def test_what_inconclusive_exits_with(
    tmp_path: Path, evaluator_cli: Any, suite_says: dict[str, str], flags: list[str], code: int, line: str
) -> None:
    path = tmp_path / "report.json"
    evaluator.write_report(_report(tmp_path, **suite_says), path)
    done = evaluator_cli("gate", str(path), *flags)
    assert done.returncode == code, done.stdout + done.stderr
    assert line in done.stderr
    assert "? inconclusive: cand0 vs ref: exact_match" in done.stderr


CASES = [{"id": f"c{i}", "input": f"q{i}", "actual_output": "a", "expected_output": "a" if i else "b"}
         for i in range(4)]  # fmt: skip


def test_no_regression_without_a_reference_falls_back_to_the_absolute_thresholds(
    tmp_path: Path, evaluator_cli: Any
) -> None:
    suite = write_suite(tmp_path, CASES, metrics=[{"type": "exact_match"}], target=None, judge=None,
                        gate={"policy": "no_regression", "regression_tolerance": 0.05, "min_pass_rate": 0.8})  # fmt: skip
    assert evaluator_cli("run", str(suite), "--out", str(tmp_path / "out")).returncode == 0
    verdict = apply_gate(evaluator.aggregate(tmp_path / "out"))  # one variant, no comparison, no baseline
    assert any("decided on the absolute thresholds instead" in n for n in verdict.notes)
    assert verdict.status == "fail" and "quality: pass rate 75.0% is below the minimum 80.0%" in verdict.reasons


def test_no_regression_needs_a_tolerance(tmp_path: Path, evaluator_cli: Any) -> None:
    suite = write_suite(tmp_path, [{"id": "a", "input": "q", "actual_output": "a", "expected_output": "a"}],
                        metrics=[{"type": "exact_match"}], target=None, judge=None,
                        gate={"policy": "no_regression"})  # fmt: skip
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "suite.yaml:" in done.stderr and "gate" in done.stderr
    assert "policy 'no_regression' needs 'regression_tolerance'" in done.stderr
    path = tmp_path / "r.json"
    evaluator.write_report(evaluator.aggregate(pre_recorded_run(tmp_path / "p", 2, 1)), path)
    done = evaluator_cli("gate", str(path), "--policy", "no_regression")
    assert done.returncode == 2 and "policy no_regression needs a tolerance" in done.stderr


def test_absolute_policy_holds_every_variant_to_the_thresholds(tmp_path: Path, evaluator_cli: Any) -> None:
    """With variants and pre-recorded answers (no server): each variant's numbers are judged on their own."""
    variants = [{"name": name, "base_url": "http://127.0.0.1:9/v1", "model": name} for name in ("a", "b")]
    suite = write_suite(tmp_path, CASES, metrics=[{"type": "exact_match"}], target=None, judge=None,
                        variants=variants, gate={"min_pass_rate": 0.8})  # fmt: skip
    out = tmp_path / "out"
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    report = evaluator.aggregate(out)
    assert report.totals.cases == 8 and list(report.variants) == ["a", "b"]
    assert evaluator.judge(report).reasons == [
        f"variant {name}: quality: {what}" for name in ("a", "b")
        for what in ("pass rate 75.0% is below the minimum 80.0%", "metric exact_match passes 75.0% of cases, below 80.0%")
    ]  # fmt: skip
