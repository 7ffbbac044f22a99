"""The quality gate: may this release ship? Fail closed on anything that makes the numbers untrustworthy.

The one verdict function: `evaluator gate` turns it into an exit code and every report (terminal, PR comment,
HTML) prints the same verdict, so a comment can never say PASS where the gate says FAIL.

Two policies (the suite's `gate.policy`, or `--policy`):
- `absolute`: every variant meets `min_pass_rate`, overall and per metric (with `--baseline` and a tolerance, each
  variant is also held to the baseline under the no_regression rule below).
- `no_regression`: every candidate against the reference variant (or, with `--baseline`, each variant against
  the baseline report's): a metric fails only when the confidence interval of its paired difference lies
  entirely below -tolerance, passes when it lies entirely above, and is INCONCLUSIVE otherwise, with an estimate
  of how many more cases would decide it. Inconclusive blocks by default (fail closed: "not shown to be safe");
  `gate.inconclusive: warn` lets it through with a warning. No reference at all (one variant, no baseline): the
  absolute thresholds apply, and the verdict says so.
Both: any recorded problem, no case at all, or errors above the error budget fail the gate.

Comparisons are computed afresh from the report's cases by the one engine (evaluator.compare), so a report written
by an older evaluator is decided with today's intervals; `evaluator report --fail-on-regression` is
`against_baseline_verdict`, the same comparison under the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from evaluator.compare import Compared, Scores, against_baseline, interval_of, report_compared
from evaluator.contract import Difference, MetricSummary, PairComparison, Report, Totals
from evaluator.errors import InputError
from evaluator.provenance import mixed_versions
from evaluator.stats import NonInferiority, non_inferiority, paired_cases_to_decide


@dataclass(frozen=True)
class GateSettings:
    """The settings a verdict was reached with, and where each came from: the suite's gate, or a command-line
    option overriding it (`sources`: setting name -> "suite" or the option)."""

    policy: str
    min_pass_rate: float
    tolerance: float | None
    mode: str
    inconclusive: str
    error_budget: float
    sources: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: `gate: policy absolute (suite), min_pass_rate 0.7 (--min-pass-rate), ...`."""
        shown = []
        for name in ("policy", "min_pass_rate", "tolerance", "mode", "inconclusive", "error_budget"):
            value = getattr(self, name)
            text = "none" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
            shown.append(f"{name} {text} ({self.sources.get(name, 'suite')})")
        return "gate: " + ", ".join(shown)


def settings_of(
    report: Report,
    *,
    mode: str | None = None,
    policy: str | None = None,
    tolerance: float | None = None,
    min_pass_rate: float | None = None,
) -> GateSettings:
    """The suite's gate with the given overrides; `no_regression` without any tolerance is an input error."""
    gate = report.gate
    sources: dict[str, str] = {}
    for name, given, option in (("policy", policy, "--policy"), ("min_pass_rate", min_pass_rate, "--min-pass-rate"),
                                ("tolerance", tolerance, "--tolerance"), ("mode", mode, "--mode")):  # fmt: skip
        sources[name] = option if given is not None else "suite"
    chosen = policy or gate.policy
    chosen_tolerance = tolerance if tolerance is not None else gate.regression_tolerance
    if chosen == "no_regression" and chosen_tolerance is None:
        raise InputError(
            "policy no_regression needs a tolerance (the largest drop accepted, e.g. 0.02): give --tolerance or set "
            "the suite's gate.regression_tolerance; this report's suite sets none"
        )
    inconclusive = gate.inconclusive
    if mode == "block":
        inconclusive, sources["inconclusive"] = "block", "--mode block"
    return GateSettings(
        policy=chosen,
        min_pass_rate=min_pass_rate if min_pass_rate is not None else gate.min_pass_rate,
        tolerance=chosen_tolerance,
        mode=mode or gate.mode,
        inconclusive=inconclusive,
        error_budget=gate.error_budget,
        sources=sources,
    )


@dataclass
class Verdict:
    passed: bool
    mode: str
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)
    inconclusive_blocks: bool = True
    policy: str = "absolute"
    settings: GateSettings | None = None

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

    def lines(self) -> list[str]:
        """The failures ("- ") and inconclusive comparisons ("? "), as `gate` and `report` print them."""
        return [f"  - {reason}" for reason in self.reasons] + [f"  ? {reason}" for reason in self.inconclusive]


def _new_verdict(settings: GateSettings) -> Verdict:
    return Verdict(
        passed=True,
        mode=settings.mode,
        inconclusive_blocks=settings.inconclusive == "block",
        policy=settings.policy,
        settings=settings,
    )


def apply_gate(
    report: Report,
    *,
    mode: str | None = None,
    baseline: Report | None = None,
    policy: str | None = None,
    tolerance: float | None = None,
    min_pass_rate: float | None = None,
    allow_mixed_versions: bool = False,
) -> Verdict:
    """Applies the suite's gate (carried in the report) to the report's numbers.

    Each keyword overrides the suite's setting of that name: `mode` `block` also makes an inconclusive comparison
    block (the strict reading a pipeline asks for), `warn` lets nothing block; `policy`, `tolerance` (the
    regression tolerance) and `min_pass_rate`. `Verdict.settings` says which were used and where they came from.
    Under no_regression a judge or DeepEval version that differs between shards or from the baseline is
    INCONCLUSIVE unless `allow_mixed_versions` (see `provenance.mixed_versions`)."""
    settings = settings_of(report, mode=mode, policy=policy, tolerance=tolerance, min_pass_rate=min_pass_rate)
    verdict = _new_verdict(settings)
    totals = report.totals
    for item in report.problems:
        verdict.fail(f"{item.kind}: {item.message}")
    if totals.cases == 0:
        verdict.fail("no case was evaluated")
    named = len(report.variant_names) > 1
    budget = report.gate.error_budget
    for name, t, _ in _views(report):
        prefix = f"variant {name}: " if named else ""
        error_rate = t.error_rate or 0.0
        if error_rate > budget:
            verdict.fail(
                f"{prefix}errors: {t.errored} of {t.cases} cases errored ({error_rate:.1%}), "
                f"budget {budget:.1%} (infrastructure, not quality)"
            )
    _versions(report, baseline, verdict, blocking=settings.policy == "no_regression" and not allow_mixed_versions)
    if settings.policy == "no_regression":
        _no_regression(report, baseline, verdict, settings.tolerance or 0.0, settings.min_pass_rate)
    else:
        _absolute(report, verdict, settings.min_pass_rate)
        if baseline is not None:
            if settings.tolerance is None:
                verdict.notes.append(
                    "baseline given but no regression tolerance (suite or --tolerance): not gating on it"
                )
            else:
                _baseline(report, baseline, verdict, settings.tolerance)
    return verdict


def against_baseline_verdict(
    report: Report, baseline: Report, *, tolerance: float | None = None, mode: str | None = None
) -> Verdict:
    """The comparison with a baseline alone, under the gate's rule (what `report --fail-on-regression` exits on):
    the tolerance given, else the suite's, else 0."""
    given = tolerance if tolerance is not None else (report.gate.regression_tolerance or 0.0)
    settings = settings_of(report, mode=mode, policy="no_regression", tolerance=given)
    verdict = _new_verdict(settings)
    _baseline(report, baseline, verdict, given)
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


def _absolute(report: Report, verdict: Verdict, min_pass_rate: float) -> None:
    named = len(report.variant_names) > 1
    for name, totals, metrics in _views(report):
        prefix = f"variant {name}: " if named else ""
        pass_rate = totals.pass_rate
        if pass_rate is None or pass_rate < min_pass_rate:
            shown = "n/a" if pass_rate is None else f"{pass_rate:.1%}"
            verdict.fail(f"{prefix}quality: pass rate {shown} is below the minimum {min_pass_rate:.1%}")
        for metric, summary in sorted(metrics.items()):
            rate = summary.pass_rate
            if rate is not None and rate < min_pass_rate:
                verdict.fail(f"{prefix}quality: metric {metric} passes {rate:.1%} of cases, below {min_pass_rate:.1%}")


def _baseline(report: Report, baseline: Report, verdict: Verdict, tolerance: float) -> bool:
    """Each variant against the baseline's, every metric and the pass rate held to the tolerance; False when
    nothing could be compared."""
    found = against_baseline(report, baseline)
    verdict.notes.extend(found.notes)
    compared = [c for c in found.compared if c.pair.cases]
    for item in compared:
        pair = item.pair
        if _itself(report, baseline, pair):
            # the fan-out gates every branch against the reference's report, the reference's own branch too
            verdict.notes.append(f"{pair.candidate} is the baseline itself (run {report.run_id}): nothing to compare")
            continue
        _decide_pair(item, tolerance, verdict)
    return bool(compared)


def _itself(report: Report, baseline: Report, pair: PairComparison) -> bool:
    """The same variant of the same run with the very same case records: a report compared with itself."""
    return (
        baseline.run_id is not None
        and baseline.run_id == report.run_id
        and pair.reference == pair.candidate
        and baseline.cases_of(pair.reference) == report.cases_of(pair.candidate)
    )


def _no_regression(
    report: Report, baseline: Report | None, verdict: Verdict, tolerance: float, min_pass_rate: float
) -> None:
    if baseline is not None:
        compared = _baseline(report, baseline, verdict, tolerance)
    else:
        pairs = report_compared(report)
        for item in pairs:
            _decide_pair(item, tolerance, verdict)
        compared = bool(pairs)
    if not compared:
        verdict.notes.append(
            "policy no_regression: no reference to compare with (one variant and no usable baseline): "
            "decided on the absolute thresholds instead"
        )
        _absolute(report, verdict, min_pass_rate)


def _decide_pair(item: Compared, tolerance: float, verdict: Verdict) -> None:
    pair = item.pair
    if pair.errored:
        verdict.notes.append(
            f"{pair_label(pair)}: {pair.errored} of {pair.cases} shared case(s) errored on a side and were left out"
        )
    rows: list[tuple[str, Difference, Scores]] = [(name, pair.metrics[name], item.metrics[name])
                                                    for name in sorted(pair.metrics)]  # fmt: skip
    rows.append(("pass rate", pair.pass_rate, item.pass_rate))
    for name, diff, scores in rows:
        decide(pair, name, diff, tolerance, verdict, scores)


def pair_label(pair: PairComparison) -> str:
    against = f"baseline {pair.baseline_run_id} {pair.reference}" if pair.baseline_run_id else pair.reference
    return f"{pair.candidate} vs {against}"


def classify(diff: Difference, confidence: float, tolerance: float) -> NonInferiority | None:
    """regression / no_regression / inconclusive of one paired difference; None when no case paired up."""
    interval = interval_of(diff, confidence)
    return non_inferiority(interval, tolerance) if interval is not None else None


def reading(
    pair: PairComparison, diff: Difference, tolerance: float, scores: Scores | None = None
) -> NonInferiority | None:
    """`classify`, with "N more cases" as the gate says it: projected from the paired scores when given
    (`stats.paired_cases_to_decide`), else read off the interval."""
    result = classify(diff, pair.confidence, tolerance)
    if result is None or result.verdict != "inconclusive" or scores is None or not scores[0]:
        return result
    return replace(result, more_cases=paired_cases_to_decide(*scores, tolerance, pair.confidence, seed=pair.seed))


def decide(
    pair: PairComparison,
    name: str,
    diff: Difference,
    tolerance: float,
    verdict: Verdict,
    scores: Scores | None = None,
) -> str:
    """One metric of one pair held to the tolerance: regression (fails), no_regression, or inconclusive."""
    label = f"{pair_label(pair)}: {name}"
    result = reading(pair, diff, tolerance, scores)
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
        more = result.more_cases
        text = f"{more} more cases would decide it" if more else "no number of cases would decide it at this difference"
        verdict.undecided(f"inconclusive: {label}: {shown}: {text}")
    return result.verdict
