"""The verdict's rules, each on a case that was wrong before (issue 18):

- "N more cases would decide it" is right for lopsided intervals and for all-ties runs;
- intervals on bounded scores stay within their bounds (means in 0..1, differences in -1..1);
- one comparison engine: within-run and baseline comparisons, `gate` and `report --fail-on-regression` read the
  same intervals under the same rule, and count errored cases as the pass rate does (left out);
- `evaluator gate` takes --min-pass-rate, --policy, --tolerance and --mode and says which settings it used.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import evaluator
from evaluator import stats
from evaluator.baseline import compare as baseline_compare
from evaluator.cli import main
from evaluator.compare import against_baseline, difference, within_run
from evaluator.contract import Report, to_json
from evaluator.gate import apply_gate, classify
from evaluator.suite import CompareSettings, Gate
from tests.helpers import pre_recorded_run, report_case, write_suite
from tests.reporting.real_runs import make_report, set_score

MORE = re.compile(r"(\d+) more cases would decide it")


# --- N more cases ----------------------------------------------------------------------------------------------
def test_more_cases_for_the_lopsided_interval_of_the_issue() -> None:
    """n=10, estimate -0.6, interval [-1.0, 0.0], tolerance 0.03: the upper arm (0.6) must shrink below the 0.57
    between the estimate and -0.03: 10 * (0.6/0.57)^2 = 11.08 cases, 2 more. Not 0, not 'never'."""
    lopsided = stats.Interval(-0.6, -1.0, 0.0, 0.95, 10)
    assert stats.cases_to_decide(lopsided, 0.03) == 2
    mirrored = stats.Interval(0.4, -0.2, 1.0, 0.95, 10)  # the lower arm (0.6) against the 0.43 above -0.03
    assert stats.cases_to_decide(mirrored, 0.03) == 10  # 10 * (0.6/0.43)^2 = 19.5 cases


def _paired_report(tmp_path: Path, reference: list[float], candidate: list[float], tolerance: float) -> Report:
    """A real aggregate whose cases are replaced by two variants' scores, compared by the engine."""
    base = evaluator.aggregate(pre_recorded_run(tmp_path / f"r{len(reference)}", 2, 1))
    cases = [report_case(f"c{i:05d}", "ref", r) for i, r in enumerate(reference)]
    cases += [report_case(f"c{i:05d}", "cand", c) for i, c in enumerate(candidate)]
    settings = CompareSettings()
    return base.model_copy(
        update={
            "cases": cases, "variants": {}, "reference": "ref", "compare": settings,
            "comparisons": within_run(cases, ["ref", "cand"], "ref", settings),
            "gate": Gate(policy="no_regression", regression_tolerance=tolerance, error_budget=1.0),
        }
    )  # fmt: skip


@pytest.mark.parametrize(
    ("reference", "candidate", "decided"),
    [
        ([1.0] * 10, [1.0] * 10, "pass"),  # all ties at n=10: nothing shown yet
        ([1.0] * 10, [1.0] * 7 + [0.0] * 3, "fail"),  # lopsided: 3 losses, no win
    ],
)
def test_the_number_of_more_cases_decides_the_verdict(
    tmp_path: Path, reference: list[float], candidate: list[float], decided: str
) -> None:
    """The gate's own estimate, checked by growing the run with the same answers: at n + N cases it decides, at
    well under that it still cannot."""
    first = apply_gate(_paired_report(tmp_path, reference, candidate, 0.03))
    assert first.status == "inconclusive", first.reasons
    found = [MORE.search(line) for line in first.inconclusive]
    assert all(found), first.inconclusive
    more = max(int(m.group(1)) for m in found if m)
    total = len(reference) + more
    grown = math.ceil(total / len(reference))
    assert apply_gate(_paired_report(tmp_path, reference * grown, candidate * grown, 0.03)).status == decided
    fewer = math.floor(0.6 * total / len(reference))
    if fewer >= 1:
        assert apply_gate(_paired_report(tmp_path, reference * fewer, candidate * fewer, 0.03)).status == "inconclusive"


# --- bounded intervals -----------------------------------------------------------------------------------------
def test_a_mean_interval_stays_within_0_and_1(tmp_path: Path, evaluator_cli: Any) -> None:
    """9 of 10 exact matches: a Student-t interval says [0.67, 1.13]; a mean of 0..1 scores cannot exceed 1."""
    cases = [{"id": f"c{i}", "input": f"q{i}", "actual_output": "a", "expected_output": "a" if i else "b"}
             for i in range(10)]  # fmt: skip
    suite = write_suite(tmp_path, cases, metrics=[{"type": "exact_match"}], target=None, judge=None)
    assert evaluator_cli("run", str(suite), "--out", str(tmp_path / "out")).returncode == 0
    summary = evaluator.aggregate(tmp_path / "out").metrics["exact_match"]
    assert summary.mean == 0.9
    assert summary.ci_low is not None and summary.ci_high is not None
    assert 0.0 <= summary.ci_low < 0.9 < summary.ci_high <= 1.0


@pytest.mark.parametrize("seed", range(20))
def test_a_difference_interval_stays_within_minus_1_and_1(seed: int) -> None:
    import random

    rng = random.Random(seed)
    n = rng.choice([2, 3, 5, 10])
    reference = [rng.choice([0.0, 1.0, rng.random()]) for _ in range(n)]
    candidate = [rng.choice([0.0, 1.0, rng.random()]) for _ in range(n)]
    diff = difference(reference, candidate, CompareSettings())
    assert diff.ci_low is not None and diff.ci_high is not None
    assert -1.0 <= diff.ci_low <= diff.ci_high <= 1.0


# --- one engine ------------------------------------------------------------------------------------------------
def test_errored_cases_are_left_out_of_comparisons_as_of_the_pass_rate() -> None:
    """c1 errored in the candidate, c2 in the reference, c4 in both: the pass rate leaves errored cases out
    (passed / (cases - errored)), and so does every comparison: only c0 and c3 pair up."""
    reference = [report_case("c0", "r", 1.0), report_case("c1", "r", 1.0), report_case("c2", "r", None, error=True),
                 report_case("c3", "r", 0.0), report_case("c4", "r", None, error=True)]  # fmt: skip
    candidate = [report_case("c0", "k", 1.0), report_case("c1", "k", None, error=True), report_case("c2", "k", 1.0),
                 report_case("c3", "k", 0.0), report_case("c4", "k", None, error=True)]  # fmt: skip
    (pair,) = within_run([*reference, *candidate], ["r", "k"], "r", CompareSettings())
    assert pair.metrics["m"].n == 2 and pair.pass_rate.n == 2
    assert (pair.metrics["m"].wins, pair.metrics["m"].losses) == (0, 0)
    assert pair.flipped_to_fail == [] and pair.flipped_to_pass == []


def _one_failure(tolerance: float = 0.05) -> tuple[Report, Report]:
    base = make_report(10, pass_all=True, regression_tolerance=tolerance, run_id="base")
    return set_score(base, "case-00003", "exact_match", 0.0), base


def test_baseline_comparison_and_gate_read_the_same_interval() -> None:
    """One failure in 10 cases is a point drop of 0.1, beyond a 0.05 tolerance, but 10 cases cannot show it:
    the report's baseline comparison, the gate and `gate --baseline` under either policy all say inconclusive."""
    current, base = _one_failure()
    comparison = baseline_compare(current, base, 0.05)
    (pair,) = against_baseline(current, base).pairs
    for delta in comparison.metrics:
        expected = classify(pair.metrics[delta.name], pair.confidence, 0.05)
        assert expected is not None
        assert delta.difference == pair.metrics[delta.name]
        assert delta.reading == expected.verdict
        assert delta.regressed == (expected.verdict == "regression")
    assert not comparison.regressed
    for policy in ("absolute", "no_regression"):
        verdict = apply_gate(current, baseline=base, policy=policy)
        assert not [r for r in verdict.reasons if r.startswith("regression")], (policy, verdict.reasons)
        assert any("exact_match" in line for line in verdict.inconclusive), (policy, verdict.inconclusive)


def test_report_fail_on_regression_is_the_gates_baseline_verdict(tmp_path: Path) -> None:
    current, base = _one_failure()
    (tmp_path / "r.json").write_text(to_json(current))
    (tmp_path / "b.json").write_text(to_json(base))
    gate = CliRunner().invoke(main, ["gate", str(tmp_path / "r.json"), "--baseline", str(tmp_path / "b.json"),
                                     "--policy", "no_regression"])  # fmt: skip
    report = CliRunner().invoke(main, ["report", str(tmp_path / "r.json"), "--baseline", str(tmp_path / "b.json"),
                                       "--fail-on-regression", "-q"])  # fmt: skip
    assert gate.exit_code == report.exit_code == 1, (gate.output, report.output)
    gate_lines = {line.strip() for line in gate.output.splitlines() if line.strip().startswith("? inconclusive")}
    report_lines = {line.strip() for line in report.output.splitlines() if line.strip().startswith("? inconclusive")}
    assert gate_lines and gate_lines == report_lines


# --- gate overrides --------------------------------------------------------------------------------------------
CASES = [{"id": f"c{i}", "input": f"q{i}", "actual_output": "a", "expected_output": "a" if i else "b"}
         for i in range(4)]  # fmt: skip


def test_gate_overrides_are_applied_and_named(tmp_path: Path, evaluator_cli: Any) -> None:
    suite = write_suite(tmp_path, CASES, metrics=[{"type": "exact_match"}], target=None, judge=None,
                        gate={"min_pass_rate": 0.8})  # fmt: skip
    assert evaluator_cli("run", str(suite), "--out", str(tmp_path / "out")).returncode == 0
    path = tmp_path / "report.json"
    evaluator.write_report(evaluator.aggregate(tmp_path / "out"), path)  # pass rate 75 %
    as_is = evaluator_cli("gate", str(path))
    assert as_is.returncode == 1
    assert "min_pass_rate 0.8 (suite)" in as_is.stdout + as_is.stderr
    lower = evaluator_cli("gate", str(path), "--min-pass-rate", "0.7")
    assert lower.returncode == 0, lower.stdout + lower.stderr
    assert "min_pass_rate 0.7 (--min-pass-rate)" in lower.stdout
    assert "policy absolute (suite)" in lower.stdout and "mode block (suite)" in lower.stdout
    warn = evaluator_cli("gate", str(path), "--mode", "warn")
    assert warn.returncode == 0 and "mode warn (--mode)" in warn.stdout + warn.stderr
    # the suite sets no tolerance: --policy no_regression needs --tolerance, and then runs
    refused = evaluator_cli("gate", str(path), "--policy", "no_regression")
    assert refused.returncode == 2 and "--tolerance" in refused.stderr
    chosen = evaluator_cli("gate", str(path), "--policy", "no_regression", "--tolerance", "0.1")
    out = chosen.stdout + chosen.stderr
    assert "policy no_regression (--policy)" in out and "tolerance 0.1 (--tolerance)" in out
