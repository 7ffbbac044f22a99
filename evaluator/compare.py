"""Candidates against a reference, case by case: paired differences with confidence intervals. The one
comparison engine: within-run comparisons (the aggregate's `comparisons`), baseline comparisons (`against_baseline`,
and `baseline.compare` over it), `evaluator gate` and `evaluator report --fail-on-regression` all read it.

Two reports of one question, "is the candidate worse than what we ship?":
- within a run: every variant against the suite's reference variant (`compare.reference`, else the first);
- across runs: each variant of this run against the same variant of a baseline report (or against a baseline's
  only variant), on the cases both runs evaluated: a `pr` run against a `nightly` baseline is compared on the
  cases they share, and `notes` says so plainly.

Errored cases, one rule for every number (`pair_up`): a case whose `error` is set (the target failed, or a metric
errored) is left out of every quality number, as the pass rate (passed / (cases - errored)) leaves it out: a pair
is compared only when neither side errored, and a metric only where both sides scored it. Errors count against the
gate's error budget instead; `PairComparison.errored` says how many shared cases were left out for them.

Per metric: the mean difference (candidate - reference) with an interval that keeps its level at every n
(`stats.paired_interval`: Tango's score interval for 0/1 scores, a betting interval for scores in 0..1), per-case
wins/ties/losses and the exact sign test. The same is done for the case-level pass (every metric passed: 1, else
0), whose flips are listed: the cases to look at first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from evaluator.contract import Difference, PairComparison, Report, ReportCase
from evaluator.policy import CompareSettings
from evaluator.stats import Interval, paired_interval, sign_test, win_tie_loss

Scores = tuple[list[float], list[float]]


def difference(reference: Sequence[float], candidate: Sequence[float], settings: CompareSettings) -> Difference:
    """Summary of paired scores: means, mean difference with its interval, wins/ties/losses, p-value."""
    n = len(reference)
    if n == 0:
        return Difference(n=0, reference_mean=None, candidate_mean=None, difference=None, ci_low=None,
                          ci_high=None, wins=0, ties=0, losses=0, p_value=None)  # fmt: skip
    outcome = win_tie_loss(reference, candidate, tie_margin=settings.tie_margin)
    interval, method = paired_interval(reference, candidate, settings.confidence, seed=settings.seed)
    return Difference(
        n=n,
        reference_mean=math.fsum(reference) / n,
        candidate_mean=math.fsum(candidate) / n,
        difference=interval.estimate,
        ci_low=interval.low if math.isfinite(interval.low) else None,
        ci_high=interval.high if math.isfinite(interval.high) else None,
        wins=outcome.wins,
        ties=outcome.ties,
        losses=outcome.losses,
        p_value=sign_test(outcome),
        method=method,
    )


def interval_of(diff: Difference, confidence: float) -> Interval | None:
    """The difference as a stats.Interval (infinite where nothing bounds it); None with no case."""
    if diff.difference is None:
        return None
    low = diff.ci_low if diff.ci_low is not None else -math.inf
    high = diff.ci_high if diff.ci_high is not None else math.inf
    return Interval(diff.difference, low, high, confidence, diff.n)


def metric_entry(case: ReportCase, metric: str) -> tuple[float | None, bool, str, str | None]:
    """(score, success, reason, error) of one case's metric; a case-level error wins."""
    if case.error is not None:
        return None, False, case.error.message, case.error.kind
    entry = case.metrics.get(metric)
    if entry is None:
        return None, False, "", "metric not evaluated"
    return entry.score, entry.success and entry.score is not None, entry.reason or "", entry.error or None


def passed(case: ReportCase) -> bool:
    """The case-level pass, as the totals count it."""
    return case.success and case.error is None


@dataclass(frozen=True)
class Pairing:
    """The cases of a candidate matched to a reference's: `shared` ids both answered (in the candidate's order),
    `compared` the pairs where neither side errored, `errored` the shared ids left out because a side did."""

    shared: list[str]
    compared: list[tuple[ReportCase, ReportCase]]
    errored: list[str]

    def metric_scores(self, metric: str) -> Scores:
        """(reference, candidate) scores of the compared pairs where both sides scored the metric."""
        reference: list[float] = []
        candidate: list[float] = []
        for ref, cand in self.compared:
            old, new = metric_entry(ref, metric), metric_entry(cand, metric)
            if old[0] is None or new[0] is None or old[3] is not None or new[3] is not None:
                continue
            reference.append(old[0])
            candidate.append(new[0])
        return reference, candidate

    def pass_scores(self) -> Scores:
        return [1.0 if passed(r) else 0.0 for r, _ in self.compared], [
            1.0 if passed(c) else 0.0 for _, c in self.compared
        ]


def pair_up(reference: Sequence[ReportCase], candidate: Sequence[ReportCase]) -> Pairing:
    """The one rule for errored cases (see the module's docstring)."""
    ref = {c.case_id: c for c in reference}
    shared = [c for c in candidate if c.case_id in ref]
    compared = [(ref[c.case_id], c) for c in shared if ref[c.case_id].error is None and c.error is None]
    errored = [c.case_id for c in shared if ref[c.case_id].error is not None or c.error is not None]
    return Pairing([c.case_id for c in shared], compared, errored)


@dataclass(frozen=True)
class Compared:
    """A pair's comparison and the paired scores it was computed from (what "N more cases" projects)."""

    pair: PairComparison
    metrics: dict[str, Scores]
    pass_rate: Scores


def compare_pair(
    reference: Sequence[ReportCase],
    candidate: Sequence[ReportCase],
    metrics: Sequence[str],
    settings: CompareSettings,
    *,
    reference_name: str,
    candidate_name: str,
    baseline_run_id: str | None = None,
) -> Compared:
    """One candidate against one reference over the case ids both have."""
    pairing = pair_up(reference, candidate)
    scores = {metric: pairing.metric_scores(metric) for metric in metrics}
    pass_scores = pairing.pass_scores()
    compared = pairing.compared
    pair = PairComparison(
        reference=reference_name,
        candidate=candidate_name,
        baseline_run_id=baseline_run_id,
        cases=len(pairing.shared),
        errored=len(pairing.errored),
        metrics={metric: difference(*scores[metric], settings) for metric in metrics},
        pass_rate=difference(*pass_scores, settings),
        flipped_to_fail=[c.case_id for r, c in compared if passed(r) and not passed(c)],
        flipped_to_pass=[c.case_id for r, c in compared if not passed(r) and passed(c)],
        confidence=settings.confidence,
        resamples=settings.resamples,
        seed=settings.seed,
    )
    return Compared(pair, scores, pass_scores)


def metric_names(cases: Sequence[ReportCase]) -> list[str]:
    return sorted({name for case in cases for name in case.metrics})


def within_run_compared(cases: Sequence[ReportCase], variants: Sequence[str], reference: str,
                        settings: CompareSettings) -> list[Compared]:  # fmt: skip
    """Every other variant against `reference`, in suite order, with the paired scores."""
    if reference not in variants or len(variants) < 2:
        return []
    by_variant: dict[str, list[ReportCase]] = {name: [] for name in variants}
    for case in cases:
        by_variant.setdefault(case.variant, []).append(case)
    metrics = metric_names(cases)
    return [
        compare_pair(
            by_variant[reference], by_variant[name], metrics, settings, reference_name=reference, candidate_name=name
        )
        for name in variants
        if name != reference
    ]


def within_run(cases: Sequence[ReportCase], variants: Sequence[str], reference: str,
               settings: CompareSettings) -> list[PairComparison]:  # fmt: skip
    """Every other variant against `reference`, in suite order: the report's `comparisons`."""
    return [compared.pair for compared in within_run_compared(cases, variants, reference, settings)]


def report_compared(report: Report) -> list[Compared]:
    """A report's within-run comparisons, computed afresh from its cases (what the gate decides on: the intervals of
    this evaluator, whatever evaluator wrote the report)."""
    if report.reference is None:
        return []
    return within_run_compared(report.cases, report.variant_names, report.reference, report.compare)


@dataclass(frozen=True)
class BaselinePairs:
    """This run's variants against a baseline report's, with what was (and was not) comparable said plainly."""

    compared: list[Compared] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    shared_cases: int = 0

    @property
    def pairs(self) -> list[PairComparison]:
        return [c.pair for c in self.compared]


def variant_pairs(current: Report, baseline: Report) -> list[tuple[str, str]]:
    """(current variant, baseline variant): the same name, or the baseline's only variant for every variant."""
    base_names = baseline.variant_names
    if len(base_names) == 1:
        return [(name, base_names[0]) for name in current.variant_names]
    return [(name, name) for name in current.variant_names if name in base_names]


def against_baseline(current: Report, baseline: Report, settings: CompareSettings | None = None) -> BaselinePairs:
    """Each variant of `current` against its baseline variant, over the cases both runs evaluated, on the metrics
    both scored (a metric only one run has is named in the notes, not compared)."""
    settings = settings or current.compare
    notes = like_with_like(current, baseline)
    pairs = variant_pairs(current, baseline)
    unmatched = [name for name in current.variant_names if name not in {c for c, _ in pairs}]
    if unmatched:
        notes.append(f"no baseline for variant(s) {', '.join(unmatched)}: not compared with the baseline")
    out: list[Compared] = []
    shared = 0
    one_sided: set[str] = set()
    for cur_name, base_name in pairs:
        cur_cases, base_cases = current.cases_of(cur_name), baseline.cases_of(base_name)
        cur_metrics, base_metrics = set(metric_names(cur_cases)), set(metric_names(base_cases))
        one_sided |= cur_metrics ^ base_metrics
        compared = compare_pair(base_cases, cur_cases, sorted(cur_metrics & base_metrics), settings,
                                reference_name=base_name, candidate_name=cur_name,
                                baseline_run_id=baseline.run_id or "baseline")  # fmt: skip
        shared = max(shared, compared.pair.cases)
        out.append(compared)
    if one_sided:
        notes.append(f"metric(s) {', '.join(sorted(one_sided))} scored in only one of the two runs: not compared")
    if pairs and shared == 0:
        notes.append("the baseline shares no case with this run: nothing was compared")
    return BaselinePairs(out, notes, shared)


def like_with_like(current: Report, baseline: Report) -> list[str]:
    """Plain notes when the two runs did not evaluate the same selection of cases (profile or dataset)."""
    cur, base = current.profile, baseline.profile
    cur_name = (cur.name if cur else None) or "all cases"
    base_name = (base.name if base else None) or "all cases"
    cur_ids = {c.case_id for c in current.cases}
    base_ids = {c.case_id for c in baseline.cases}
    same_selection = cur_ids == base_ids
    if same_selection and cur_name == base_name:
        return []
    shared = len(cur_ids & base_ids)
    if cur_name != base_name:
        return [
            f"not like with like: this run is profile '{cur_name}' ({len(cur_ids)} cases), the baseline "
            f"{baseline.run_id or ''} profile '{base_name}' ({len(base_ids)} cases): compared on the {shared} "
            f"shared case(s) only"
        ]
    return [
        f"the baseline evaluated other cases ({len(base_ids)} vs {len(cur_ids)} here): compared on the {shared} "
        f"shared case(s) only"
    ]
