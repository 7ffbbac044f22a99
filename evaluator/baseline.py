"""A run against a baseline run, for the reports: per metric the paired difference and the gate's reading of it,
and the cases whose outcome changed (matched by case id, variant by variant).

Why per matched case: a suite that gained 50 easy cases must not hide a drop on the old ones, so metric
differences are computed over the cases both runs scored; new and removed cases are listed apart.

No statistics of its own: the differences, their intervals and the errored-case rule are evaluator.compare's
(`against_baseline`), and a metric *regresses* when the gate's rule says so (`gate.classify`: its interval lies
wholly below -tolerance). `evaluator gate --baseline` and `evaluator report --fail-on-regression` decide on the same
intervals (`gate.against_baseline_verdict`). The per-case lists are for people: a case that errored in this run is
listed among the regressions with its error named, though, like every errored case, it counts in no difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluator.compare import against_baseline, metric_entry, variant_pairs
from evaluator.contract import Difference, Report, ReportCase, unit_key
from evaluator.gate import classify

_EPS = 1e-9


@dataclass(frozen=True)
class CaseChange:
    """One (case, metric) whose outcome changed; new_score None means the metric or the case errored."""

    case_id: str
    metric: str
    old_score: float | None
    new_score: float | None
    old_success: bool
    new_success: bool
    reason: str
    input: str
    error: str | None = None
    variant: str = "default"

    @property
    def drop(self) -> float:
        """How much worse (positive) or better (negative) the score got; an error counts as a score of 0."""
        return (self.old_score or 0.0) - (self.new_score or 0.0)


@dataclass(frozen=True)
class MetricDelta:
    """One metric of one variant against the baseline: the engine's paired difference and the gate's reading."""

    name: str
    matched: int
    baseline_mean: float | None
    current_mean: float | None
    baseline_pass_rate: float | None
    current_pass_rate: float | None
    regressed: bool
    difference: Difference | None = None
    reading: str = "inconclusive"  # regression, no_regression or inconclusive (no case paired up: inconclusive)
    variant: str = "default"
    more_cases: int | None = None

    @property
    def mean_delta(self) -> float | None:
        if self.baseline_mean is None or self.current_mean is None:
            return None
        return self.current_mean - self.baseline_mean

    @property
    def pass_rate_delta(self) -> float | None:
        if self.baseline_pass_rate is None or self.current_pass_rate is None:
            return None
        return self.current_pass_rate - self.baseline_pass_rate


@dataclass(frozen=True)
class BaselineChanges:
    """What changed since a baseline run: each metric's delta, the cases that regressed or improved, the cases
    new or gone. (A "comparison" is one candidate against a reference, paired case by case: `PairComparison`.)"""

    tolerance: float
    baseline_run_id: str
    metrics: list[MetricDelta] = field(default_factory=list)
    regressions: list[CaseChange] = field(default_factory=list)  # most regressed first
    improvements: list[CaseChange] = field(default_factory=list)  # most improved first
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not like with like, said plainly
    confidence: float = 0.95

    @property
    def regressed(self) -> bool:
        return any(m.regressed for m in self.metrics)

    @property
    def regressed_metrics(self) -> list[MetricDelta]:
        return [m for m in self.metrics if m.regressed]

    @property
    def undecided_metrics(self) -> list[MetricDelta]:
        return [m for m in self.metrics if m.reading == "inconclusive"]

    def _line(self, m: MetricDelta) -> str:
        of = f" of variant {m.variant}" if m.variant != "default" else ""
        d = m.difference
        if d is None or d.difference is None:
            return f"metric {m.name}{of}: no case to compare with baseline {self.baseline_run_id}"
        low = "-inf" if d.ci_low is None else f"{d.ci_low:+.3f}"
        high = "+inf" if d.ci_high is None else f"{d.ci_high:+.3f}"
        return (
            f"metric {m.name}{of} vs baseline {self.baseline_run_id}: difference {d.difference:+.3f} "
            f"({self.confidence:.0%} CI {low} .. {high}, n={d.n}), tolerance {self.tolerance:g}"
        )

    def reasons(self) -> list[str]:
        """One line per metric whose interval lies wholly below -tolerance, for the reports."""
        return [self._line(m) for m in self.regressed_metrics]

    def undecided(self) -> list[str]:
        """One line per metric whose interval straddles -tolerance."""
        return [self._line(m) for m in self.undecided_metrics]


def compare(current: Report, baseline: Report, tolerance: float) -> BaselineChanges:
    """Current against baseline (evaluator.compare's paired differences), each metric read by the gate's rule
    with `tolerance` (0-1 scale), plus the per-case changes and the new and removed cases."""
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    found = against_baseline(current, baseline)
    deltas: list[MetricDelta] = []
    for item in found.compared:
        pair = item.pair
        for name, diff in sorted(pair.metrics.items()):
            reading = classify(diff, pair.confidence, tolerance)
            ref_cases = {c.case_id: c for c in baseline.cases_of(pair.reference)}
            cur_cases = [c for c in current.cases_of(pair.candidate) if c.case_id in ref_cases]
            base_rate, cur_rate = _pass_rates(
                [
                    (ref_cases[c.case_id], c)
                    for c in cur_cases
                    if c.error is None and ref_cases[c.case_id].error is None
                ],
                name,
            )
            deltas.append(
                MetricDelta(
                    name=name,
                    matched=diff.n,
                    baseline_mean=diff.reference_mean,
                    current_mean=diff.candidate_mean,
                    baseline_pass_rate=base_rate,
                    current_pass_rate=cur_rate,
                    regressed=reading is not None and reading.verdict == "regression",
                    difference=diff,
                    reading=reading.verdict if reading is not None else "inconclusive",
                    variant=pair.candidate,
                    more_cases=reading.more_cases if reading is not None else None,
                )
            )
    regressions, improvements = _changes(current, baseline)
    cur_keys = {c.key for c in current.cases}
    base_keys = _baseline_keys(current, baseline)
    return BaselineChanges(
        tolerance=tolerance,
        baseline_run_id=baseline.run_id or "baseline",
        metrics=deltas,
        regressions=regressions,
        improvements=improvements,
        new=sorted(cur_keys - base_keys.keys()),
        removed=sorted(base_keys.keys() - cur_keys),
        notes=found.notes,
        confidence=current.compare.confidence,
    )


def _pass_rates(pairs: list[tuple[ReportCase, ReportCase]], metric: str) -> tuple[float | None, float | None]:
    """The metric's pass rate on each side over the compared pairs that scored it (the same pairs as its mean)."""
    scored = [(metric_entry(b, metric), metric_entry(c, metric)) for b, c in pairs]
    scored = [(b, c) for b, c in scored if b[0] is not None and c[0] is not None and b[3] is None and c[3] is None]
    if not scored:
        return None, None
    return sum(b[1] for b, _ in scored) / len(scored), sum(c[1] for _, c in scored) / len(scored)


def _baseline_keys(current: Report, baseline: Report) -> dict[str, ReportCase]:
    """Each baseline case keyed by the current unit it is matched to."""
    base: dict[str, ReportCase] = {}
    for cur_variant, base_variant in variant_pairs(current, baseline):
        for case in baseline.cases_of(base_variant):
            base[unit_key(cur_variant, case.case_id)] = case
    return base


def _changes(current: Report, baseline: Report) -> tuple[list[CaseChange], list[CaseChange]]:
    """Every (case, metric) that got worse or better, most changed first: for people to look at, not counted."""
    cur = {c.key: c for c in current.cases}
    base = _baseline_keys(current, baseline)
    regressions: list[CaseChange] = []
    improvements: list[CaseChange] = []
    for key in sorted(cur.keys() & base.keys()):
        b_case, c_case = base[key], cur[key]
        for metric in sorted(set(b_case.metrics) | set(c_case.metrics)):
            old, old_ok, _, old_err = metric_entry(b_case, metric)
            new, new_ok, reason, new_err = metric_entry(c_case, metric)
            if old is None and old_err is not None and new is None:
                continue  # errored in both runs: nothing changed that a person could look at
            change = CaseChange(
                case_id=key,
                metric=metric,
                old_score=old,
                new_score=new,
                old_success=old_ok,
                new_success=new_ok,
                reason=reason if new_err is None else f"{new_err}: {reason}".rstrip(": "),
                input=c_case.input,
                error=new_err,
                variant=c_case.variant,
            )
            worse = (old_ok and not new_ok) or (old is not None and (new is None or new < old - _EPS))
            better = (new_ok and not old_ok) or (new is not None and (old is None or new > old + _EPS))
            if worse:
                regressions.append(change)
            elif better:
                improvements.append(change)
    regressions.sort(key=lambda c: (-c.drop, not c.old_success or c.new_success, c.case_id, c.metric))
    improvements.sort(key=lambda c: (c.drop, c.case_id, c.metric))
    return regressions, improvements


def tolerance_of(report: Report, default: float = 0.0) -> float:
    """The suite's gate.regression_tolerance recorded in the report, else default."""
    value = report.gate.regression_tolerance
    return value if value is not None else default
