"""The quality gate: may this release ship? Fail closed on anything that makes the numbers untrustworthy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evaluator.suite import Gate


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


def judge(report: dict[str, Any], *, mode: str | None = None, baseline: dict[str, Any] | None = None) -> Verdict:
    """Applies the suite's gate (carried in the report) to the report's numbers."""
    gate = Gate.model_validate(report.get("gate") or {})
    verdict = Verdict(passed=True, mode=mode or gate.mode)
    totals = report.get("totals") or {}

    def fail(reason: str) -> None:
        verdict.passed = False
        verdict.reasons.append(reason)

    for item in report.get("problems") or []:
        fail(f"{item.get('kind')}: {item.get('message')}")
    cases = int(totals.get("cases") or 0)
    if cases == 0:
        fail("no case was evaluated")
    error_rate = totals.get("error_rate") or 0.0
    if error_rate > gate.error_budget:
        fail(
            f"errors: {totals.get('errored')} of {cases} cases errored ({error_rate:.1%}), "
            f"budget {gate.error_budget:.1%} (infrastructure, not quality)"
        )
    pass_rate = totals.get("pass_rate")
    if pass_rate is None or pass_rate < gate.min_pass_rate:
        shown = "n/a" if pass_rate is None else f"{pass_rate:.1%}"
        fail(f"quality: pass rate {shown} is below the minimum {gate.min_pass_rate:.1%}")
    for name, metric in sorted((report.get("metrics") or {}).items()):
        rate = metric.get("pass_rate")
        if rate is not None and rate < gate.min_pass_rate:
            fail(f"quality: metric {name} passes {rate:.1%} of cases, below {gate.min_pass_rate:.1%}")
    if baseline is not None:
        _against_baseline(report, baseline, gate, verdict, fail)
    return verdict


def _against_baseline(
    report: dict[str, Any], baseline: dict[str, Any], gate: Gate, verdict: Verdict, fail: Any
) -> None:
    """Case-matched comparison (the same one the PR comment shows), held to the suite's regression tolerance."""
    from evaluator.reporting.baseline import compare

    if gate.regression_tolerance is None:
        verdict.notes.append("baseline given but the suite's gate sets no regression_tolerance: not gating on it")
    comparison = compare(report, baseline, gate.regression_tolerance or 0.0)
    for delta in comparison.metrics:
        if delta.mean_delta is not None:
            verdict.notes.append(f"metric {delta.name}: mean {delta.mean_delta:+.3f} vs baseline")
    if gate.regression_tolerance is not None:
        for reason in comparison.reasons():
            fail(f"regression: {reason}")
