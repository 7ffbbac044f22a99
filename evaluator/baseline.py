"""Compare a run with a baseline run, case by case (matched by case id) and metric by metric.

Why per matched case: a suite that gained 50 easy cases must not hide a drop on the old ones, so metric
deltas are computed over the cases both runs scored; new and removed cases are listed apart.

A metric *regresses* when its mean score or its pass rate over the matched cases dropped by more than the
tolerance (absolute, on the 0-1 scale). `evaluator gate --baseline` and `evaluator report
--fail-on-regression` block on `Comparison.regressed`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from evaluator.compare import like_with_like, metric_entry, variant_pairs
from evaluator.contract import Report, ReportCase, unit_key

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
    name: str
    matched: int
    baseline_mean: float | None
    current_mean: float | None
    baseline_pass_rate: float | None
    current_pass_rate: float | None
    regressed: bool

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
class Comparison:
    tolerance: float
    baseline_run_id: str
    metrics: list[MetricDelta] = field(default_factory=list)
    regressions: list[CaseChange] = field(default_factory=list)  # most regressed first
    improvements: list[CaseChange] = field(default_factory=list)  # most improved first
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not like with like, said plainly

    @property
    def regressed(self) -> bool:
        return any(m.regressed for m in self.metrics)

    @property
    def regressed_metrics(self) -> list[MetricDelta]:
        return [m for m in self.metrics if m.regressed]

    def reasons(self) -> list[str]:
        """One line per metric that dropped beyond the tolerance, for the gate's output."""
        out = []
        for m in self.regressed_metrics:
            parts = []
            if m.mean_delta is not None:
                parts.append(f"mean {m.mean_delta:+.3f}")
            if m.pass_rate_delta is not None:
                parts.append(f"pass rate {m.pass_rate_delta:+.1%}")
            out.append(
                f"metric {m.name} dropped more than {self.tolerance:g} vs baseline {self.baseline_run_id}"
                f" over {m.matched} matched case(s): {', '.join(parts)}"
            )
        return out


def _metric_names(report: Report) -> set[str]:
    names = set(report.metrics)
    for case in report.cases:
        names.update(case.metrics)
    return names


def compare(current: Report, baseline: Report, tolerance: float) -> Comparison:
    """Diff current against baseline; tolerance is the largest allowed drop of a metric (0-1 scale)."""
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    pairs = variant_pairs(current, baseline)
    cur = {c.key: c for c in current.cases}
    base: dict[str, ReportCase] = {}
    for cur_variant, base_variant in pairs:  # each current unit keyed to its baseline counterpart
        for case in baseline.cases_of(base_variant):
            base[unit_key(cur_variant, case.case_id)] = case
    matched_ids = sorted(cur.keys() & base.keys())
    regressions: list[CaseChange] = []
    improvements: list[CaseChange] = []
    deltas: list[MetricDelta] = []
    for metric in sorted(_metric_names(current) | _metric_names(baseline)):
        b_scores: list[float] = []
        c_scores: list[float] = []
        b_pass = c_pass = compared = 0
        for cid in matched_ids:
            b_case, c_case = base[cid], cur[cid]
            if metric not in b_case.metrics and metric not in c_case.metrics:
                continue
            old, old_ok, _, old_err = metric_entry(b_case, metric)
            new, new_ok, reason, new_err = metric_entry(c_case, metric)
            if old is None and old_err is not None and new is None:
                continue  # errored in both runs: nothing to compare
            compared += 1
            b_pass += old_ok
            c_pass += new_ok
            # An error scores 0 in the means: an endpoint that starts failing must show as a drop.
            b_scores.append(old if old is not None else 0.0)
            c_scores.append(new if new is not None else 0.0)
            change = CaseChange(
                case_id=cid,
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
        b_mean = statistics.fmean(b_scores) if b_scores else None
        c_mean = statistics.fmean(c_scores) if c_scores else None
        b_rate = b_pass / compared if compared else None
        c_rate = c_pass / compared if compared else None
        dropped = (b_mean is not None and c_mean is not None and b_mean - c_mean > tolerance + _EPS) or (
            b_rate is not None and c_rate is not None and b_rate - c_rate > tolerance + _EPS
        )
        deltas.append(MetricDelta(metric, compared, b_mean, c_mean, b_rate, c_rate, dropped))
    regressions.sort(key=lambda c: (-c.drop, not c.old_success or c.new_success, c.case_id, c.metric))
    improvements.sort(key=lambda c: (c.drop, c.case_id, c.metric))
    return Comparison(
        tolerance=tolerance,
        baseline_run_id=baseline.run_id or "baseline",
        metrics=deltas,
        regressions=regressions,
        improvements=improvements,
        new=sorted(cur.keys() - base.keys()),
        removed=sorted(base.keys() - cur.keys()),
        notes=like_with_like(current, baseline),
    )


def tolerance_of(report: Report, default: float = 0.0) -> float:
    """The suite's gate.regression_tolerance recorded in the report, else default."""
    value = report.gate.regression_tolerance
    return value if value is not None else default
