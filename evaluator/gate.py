"""The quality gate: may this release ship? Fail closed on anything that makes the numbers untrustworthy.

The one verdict function: `evaluator gate` turns it into an exit code and every report (terminal, PR comment,
HTML) prints the same verdict, so a comment can never say PASS where the gate says FAIL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluator.baseline import compare
from evaluator.contract import Report


@dataclass
class Verdict:
    passed: bool
    mode: str
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def blocks(self) -> bool:
        """Only a failed gate in block mode stops the release."""
        return not self.passed and self.mode == "block"

    @property
    def label(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def fail(self, reason: str) -> None:
        self.passed = False
        self.reasons.append(reason)


def judge(report: Report, *, mode: str | None = None, baseline: Report | None = None) -> Verdict:
    """Applies the suite's gate (carried in the report) to the report's numbers."""
    gate = report.gate
    verdict = Verdict(passed=True, mode=mode or gate.mode)
    totals = report.totals
    for item in report.problems:
        verdict.fail(f"{item.kind}: {item.message}")
    if totals.cases == 0:
        verdict.fail("no case was evaluated")
    error_rate = totals.error_rate or 0.0
    if error_rate > gate.error_budget:
        verdict.fail(
            f"errors: {totals.errored} of {totals.cases} cases errored ({error_rate:.1%}), "
            f"budget {gate.error_budget:.1%} (infrastructure, not quality)"
        )
    pass_rate = totals.pass_rate
    if pass_rate is None or pass_rate < gate.min_pass_rate:
        shown = "n/a" if pass_rate is None else f"{pass_rate:.1%}"
        verdict.fail(f"quality: pass rate {shown} is below the minimum {gate.min_pass_rate:.1%}")
    for name, metric in sorted(report.metrics.items()):
        rate = metric.pass_rate
        if rate is not None and rate < gate.min_pass_rate:
            verdict.fail(f"quality: metric {name} passes {rate:.1%} of cases, below {gate.min_pass_rate:.1%}")
    if baseline is not None:
        _against_baseline(report, baseline, verdict)
    return verdict


def _against_baseline(report: Report, baseline: Report, verdict: Verdict) -> None:
    """Case-matched comparison (the same one the PR comment shows), held to the suite's regression tolerance."""
    tolerance = report.gate.regression_tolerance
    if tolerance is None:
        verdict.notes.append("baseline given but the suite's gate sets no regression_tolerance: not gating on it")
    comparison = compare(report, baseline, tolerance or 0.0)
    for delta in comparison.metrics:
        if delta.mean_delta is not None:
            verdict.notes.append(f"metric {delta.name}: mean {delta.mean_delta:+.3f} vs baseline")
    if tolerance is not None:
        for reason in comparison.reasons():
            verdict.fail(f"regression: {reason}")
