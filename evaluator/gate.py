"""The quality gate: may this release ship? Fail closed on anything that makes the numbers untrustworthy.

The one verdict function: `evaluator gate` turns it into an exit code and every report (terminal, PR comment,
HTML) prints the same verdict, so a comment can never say PASS where the gate says FAIL.

Two policies (the suite's `gate.policy`):
- `absolute`: every variant meets `min_pass_rate`, overall and per metric (with `--baseline`, a drop of a mean
  or pass rate beyond `regression_tolerance` fails, as before variants existed).
- `no_regression`: every candidate against the reference variant (or, with `--baseline`, each variant against
  the baseline report's): a metric fails only when the confidence interval of its paired difference lies
  entirely below -tolerance, passes when it lies entirely above, and is INCONCLUSIVE otherwise, with an estimate
  of how many more cases would decide it. Inconclusive blocks by default (fail closed: "not shown to be safe");
  `gate.inconclusive: warn` lets it through with a warning. No reference at all (one variant, no baseline): the
  absolute thresholds apply, and the verdict says so.
Both: any recorded problem, no case at all, or errors above the error budget fail the gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluator.baseline import compare
from evaluator.compare import against_baseline, interval_of
from evaluator.contract import Difference, MetricSummary, PairComparison, Report, Totals
from evaluator.errors import InputError
from evaluator.provenance import mixed_versions
from evaluator.stats import NonInferiority, non_inferiority


@dataclass
class Verdict:
    passed: bool
    mode: str
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)
    inconclusive_blocks: bool = True
    policy: str = "absolute"

    @property
    def status(self) -> str:
        """pass, fail (a reason), or inconclusive (nothing failed, but a comparison could not decide)."""
        if self.reasons:
            return "fail"
        return "inconclusive" if self.inconclusive else "pass"

    @property
    def blocks(self) -> bool:
        """Only block mode stops a release: on a failure, and on an inconclusive comparison unless the suite
        says `inconclusive: warn`."""
        if self.mode != "block":
            return False
        return bool(self.reasons) or (bool(self.inconclusive) and self.inconclusive_blocks)

    @property
    def label(self) -> str:
        return {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}[self.status]

    def fail(self, reason: str) -> None:
        self.passed = False
        self.reasons.append(reason)

    def undecided(self, reason: str) -> None:
        self.passed = False
        self.inconclusive.append(reason)


def judge(
    report: Report, *, mode: str | None = None, baseline: Report | None = None, policy: str | None = None,
    allow_mixed_versions: bool = False,
) -> Verdict:  # fmt: skip
    """Applies the suite's gate (carried in the report) to the report's numbers.

    `mode` overrides the suite's: `block` makes an inconclusive comparison block too (the strict reading a
    pipeline asks for), `warn` lets nothing block. `policy` overrides `gate.policy`. Under no_regression a judge
    or DeepEval version that differs between shards or from the baseline is INCONCLUSIVE unless
    `allow_mixed_versions` (see `provenance.mixed_versions`)."""
    gate = report.gate
    chosen = policy or gate.policy
    if chosen == "no_regression" and gate.regression_tolerance is None:
        raise InputError(
            "policy no_regression needs the suite's gate.regression_tolerance (the largest drop accepted, e.g. 0.02);"
            " this report's suite sets none"
        )
    verdict = Verdict(
        passed=True,
        mode=mode or gate.mode,
        inconclusive_blocks=mode == "block" or gate.inconclusive == "block",
        policy=chosen,
    )
    totals = report.totals
    for item in report.problems:
        verdict.fail(f"{item.kind}: {item.message}")
    if totals.cases == 0:
        verdict.fail("no case was evaluated")
    named = len(report.variant_names) > 1
    for name, t, _ in _views(report):
        prefix = f"variant {name}: " if named else ""
        error_rate = t.error_rate or 0.0
        if error_rate > gate.error_budget:
            verdict.fail(
                f"{prefix}errors: {t.errored} of {t.cases} cases errored ({error_rate:.1%}), "
                f"budget {gate.error_budget:.1%} (infrastructure, not quality)"
            )
    _versions(report, baseline, verdict, blocking=chosen == "no_regression" and not allow_mixed_versions)
    if chosen == "no_regression":
        _no_regression(report, baseline, verdict)
    else:
        _absolute(report, verdict)
        if baseline is not None:
            _against_baseline(report, baseline, verdict)
    return verdict


def _versions(report: Report, baseline: Report | None, verdict: Verdict, *, blocking: bool) -> None:
    """Provenance differences: notes, except a judge or DeepEval difference under no_regression (inconclusive)."""
    for mismatch in mixed_versions(report, baseline):
        if blocking and mismatch.blocking:
            verdict.undecided(
                f"mixed versions: {mismatch.message}: scores judged otherwise are not comparable "
                f"(--allow-mixed-versions compares them anyway)"
            )
        else:
            verdict.notes.append(f"provenance: {mismatch.message}")


def _views(report: Report) -> list[tuple[str, Totals, dict[str, MetricSummary]]]:
    """(name, totals, metrics) of each variant; a report without variants is its one implicit variant."""
    if report.variants:
        return [(name, v.totals, v.metrics) for name, v in report.variants.items()]
    return [(report.variant_names[0], report.totals, report.metrics)]


def _absolute(report: Report, verdict: Verdict) -> None:
    gate = report.gate
    named = len(report.variant_names) > 1
    for name, totals, metrics in _views(report):
        prefix = f"variant {name}: " if named else ""
        pass_rate = totals.pass_rate
        if pass_rate is None or pass_rate < gate.min_pass_rate:
            shown = "n/a" if pass_rate is None else f"{pass_rate:.1%}"
            verdict.fail(f"{prefix}quality: pass rate {shown} is below the minimum {gate.min_pass_rate:.1%}")
        for metric, summary in sorted(metrics.items()):
            rate = summary.pass_rate
            if rate is not None and rate < gate.min_pass_rate:
                verdict.fail(
                    f"{prefix}quality: metric {metric} passes {rate:.1%} of cases, below {gate.min_pass_rate:.1%}"
                )


def _against_baseline(report: Report, baseline: Report, verdict: Verdict) -> None:
    """Case-matched comparison (the same one the PR comment shows), held to the suite's regression tolerance."""
    tolerance = report.gate.regression_tolerance
    if tolerance is None:
        verdict.notes.append("baseline given but the suite's gate sets no regression_tolerance: not gating on it")
    comparison = compare(report, baseline, tolerance or 0.0)
    verdict.notes.extend(comparison.notes)
    for delta in comparison.metrics:
        if delta.mean_delta is not None:
            verdict.notes.append(f"metric {delta.name}: mean {delta.mean_delta:+.3f} vs baseline")
    if tolerance is not None:
        for reason in comparison.reasons():
            verdict.fail(f"regression: {reason}")


def _no_regression(report: Report, baseline: Report | None, verdict: Verdict) -> None:
    tolerance = report.gate.regression_tolerance or 0.0
    if baseline is not None:
        found = against_baseline(report, baseline)
        verdict.notes.extend(found.notes)
        pairs = [p for p in found.pairs if p.cases]
    else:
        pairs = list(report.comparisons)
    if not pairs:
        verdict.notes.append(
            "policy no_regression: no reference to compare with (one variant and no usable baseline): "
            "judged on the absolute thresholds instead"
        )
        _absolute(report, verdict)
        return
    for pair in pairs:
        for name, diff in [*sorted(pair.metrics.items()), ("pass rate", pair.pass_rate)]:
            decide(pair, name, diff, tolerance, verdict)


def pair_label(pair: PairComparison) -> str:
    against = f"baseline {pair.baseline_run_id} {pair.reference}" if pair.baseline_run_id else pair.reference
    return f"{pair.candidate} vs {against}"


def classify(diff: Difference, confidence: float, tolerance: float) -> NonInferiority | None:
    """regression / no_regression / inconclusive of one paired difference; None when no case paired up."""
    interval = interval_of(diff, confidence)
    return non_inferiority(interval, tolerance) if interval is not None else None


def decide(pair: PairComparison, name: str, diff: Difference, tolerance: float, verdict: Verdict) -> str:
    """One metric of one pair held to the tolerance: regression (fails), no_regression, or inconclusive."""
    label = f"{pair_label(pair)}: {name}"
    result = classify(diff, pair.confidence, tolerance)
    if result is None:
        verdict.undecided(f"{label}: no case to compare")
        return "inconclusive"
    interval = result.difference
    shown = (
        f"difference {interval.estimate:+.3f} ({pair.confidence:.0%} CI {interval.low:+.3f} .. "
        f"{interval.high:+.3f}, n={interval.n}), tolerance {tolerance:g}"
    )
    if result.verdict == "regression":
        verdict.fail(f"regression: {label}: {shown}")
    elif result.verdict == "inconclusive":
        more = (
            f"{result.more_cases} more cases would decide it"
            if result.more_cases
            else "no number of cases would decide it at this difference"
        )
        verdict.undecided(f"inconclusive: {label}: {shown}: {more}")
    return result.verdict
