"""Candidates against a reference, case by case: paired differences with confidence intervals.

Two reports of one question, "is the candidate worse than what we ship?":
- within a run: every variant against the suite's reference variant (`compare.reference`, else the first);
- across runs: each variant of this run against the same variant of a baseline report (or against a baseline's
  only variant), on the cases both runs evaluated: a `pr` run against a `nightly` baseline is compared on the
  cases they share, and `notes` says so plainly.

Per metric: the mean difference (candidate - reference) with a seeded paired bootstrap interval, per-case
wins/ties/losses and the exact sign test. A metric or case that errored scores 0 on its side (an endpoint that
starts failing must show as a drop); a case that errored on both sides is left out. The same is done for the
case-level pass (every metric passed: 1, else 0), whose flips are listed: the cases to look at first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from evaluator.contract import Difference, PairComparison, Report, ReportCase
from evaluator.stats import Interval, paired_bootstrap_ci, sign_test, win_tie_loss
from evaluator.suite import CompareSettings


def difference(reference: Sequence[float], candidate: Sequence[float], settings: CompareSettings) -> Difference:
    """Summary of paired scores: means, mean difference with its bootstrap interval, wins/ties/losses, p-value."""
    n = len(reference)
    if n == 0:
        return Difference(n=0, reference_mean=None, candidate_mean=None, difference=None, ci_low=None,
                          ci_high=None, wins=0, ties=0, losses=0, p_value=None)  # fmt: skip
    outcome = win_tie_loss(reference, candidate, tie_margin=settings.tie_margin)
    diffs = [c - r for r, c in zip(reference, candidate, strict=True)]
    low: float | None
    high: float | None
    if n >= 2 and max(diffs) - min(diffs) > 0:
        interval = paired_bootstrap_ci(
            reference, candidate, confidence=settings.confidence, resamples=settings.resamples, seed=settings.seed
        )
        low, high = interval.low, interval.high
    elif n >= 2:  # every pair differs by the same amount: every resample has that mean
        low = high = diffs[0]
    else:
        low = high = None
    return Difference(
        n=n,
        reference_mean=math.fsum(reference) / n,
        candidate_mean=math.fsum(candidate) / n,
        difference=math.fsum(diffs) / n,
        ci_low=low,
        ci_high=high,
        wins=outcome.wins,
        ties=outcome.ties,
        losses=outcome.losses,
        p_value=sign_test(outcome),
    )


def interval_of(diff: Difference, confidence: float) -> Interval | None:
    """The difference as a stats.Interval (infinite where fewer than two cases bound it); None with no case."""
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


def _passed(case: ReportCase) -> bool:
    return case.success and case.error is None


def compare_cases(
    reference: Sequence[ReportCase],
    candidate: Sequence[ReportCase],
    metrics: Sequence[str],
    settings: CompareSettings,
    *,
    reference_name: str,
    candidate_name: str,
    baseline_run_id: str | None = None,
) -> PairComparison:
    """One candidate against one reference over the case ids both have."""
    ref = {c.case_id: c for c in reference}
    cand = {c.case_id: c for c in candidate}
    shared = [cid for cid in (c.case_id for c in candidate) if cid in ref]
    diffs: dict[str, Difference] = {}
    for metric in metrics:
        ref_scores: list[float] = []
        cand_scores: list[float] = []
        for cid in shared:
            old, _, _, old_err = metric_entry(ref[cid], metric)
            new, _, _, new_err = metric_entry(cand[cid], metric)
            if old is None and old_err is not None and new is None and new_err is not None:
                continue  # errored (or not evaluated) on both sides: nothing to compare
            ref_scores.append(old if old is not None else 0.0)
            cand_scores.append(new if new is not None else 0.0)
        diffs[metric] = difference(ref_scores, cand_scores, settings)
    both = [cid for cid in shared if not (ref[cid].error is not None and cand[cid].error is not None)]
    pass_ref = [1.0 if _passed(ref[cid]) else 0.0 for cid in both]
    pass_cand = [1.0 if _passed(cand[cid]) else 0.0 for cid in both]
    return PairComparison(
        reference=reference_name,
        candidate=candidate_name,
        baseline_run_id=baseline_run_id,
        cases=len(shared),
        metrics=diffs,
        pass_rate=difference(pass_ref, pass_cand, settings),
        flipped_to_fail=[cid for cid in both if _passed(ref[cid]) and not _passed(cand[cid])],
        flipped_to_pass=[cid for cid in both if not _passed(ref[cid]) and _passed(cand[cid])],
        confidence=settings.confidence,
        resamples=settings.resamples,
        seed=settings.seed,
    )


def metric_names(cases: Sequence[ReportCase]) -> list[str]:
    return sorted({name for case in cases for name in case.metrics})


def within_run(cases: Sequence[ReportCase], variants: Sequence[str], reference: str,
               settings: CompareSettings) -> list[PairComparison]:  # fmt: skip
    """Every other variant against `reference`, in suite order."""
    if reference not in variants or len(variants) < 2:
        return []
    by_variant: dict[str, list[ReportCase]] = {name: [] for name in variants}
    for case in cases:
        by_variant.setdefault(case.variant, []).append(case)
    metrics = metric_names(cases)
    return [
        compare_cases(
            by_variant[reference], by_variant[name], metrics, settings, reference_name=reference, candidate_name=name
        )
        for name in variants
        if name != reference
    ]


@dataclass(frozen=True)
class BaselineComparison:
    """This run's variants against a baseline report's, with what was (and was not) comparable said plainly."""

    pairs: list[PairComparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    shared_cases: int = 0


def variant_pairs(current: Report, baseline: Report) -> list[tuple[str, str]]:
    """(current variant, baseline variant): the same name, or the baseline's only variant for every variant."""
    base_names = baseline.variant_names
    if len(base_names) == 1:
        return [(name, base_names[0]) for name in current.variant_names]
    return [(name, name) for name in current.variant_names if name in base_names]


def against_baseline(current: Report, baseline: Report, settings: CompareSettings | None = None) -> BaselineComparison:
    """Each variant of `current` against its baseline variant, over the cases both runs evaluated."""
    settings = settings or current.compare
    notes = like_with_like(current, baseline)
    pairs = variant_pairs(current, baseline)
    unmatched = [name for name in current.variant_names if name not in {c for c, _ in pairs}]
    if unmatched:
        notes.append(f"no baseline for variant(s) {', '.join(unmatched)}: not compared with the baseline")
    out: list[PairComparison] = []
    shared = 0
    for cur_name, base_name in pairs:
        cur_cases, base_cases = current.cases_of(cur_name), baseline.cases_of(base_name)
        metrics = metric_names([*cur_cases, *base_cases])
        pair = compare_cases(base_cases, cur_cases, metrics, settings, reference_name=base_name,
                             candidate_name=cur_name, baseline_run_id=baseline.run_id or "baseline")  # fmt: skip
        shared = max(shared, pair.cases)
        out.append(pair)
    if pairs and shared == 0:
        notes.append("the baseline shares no case with this run: nothing was compared")
    return BaselineComparison(out, notes, shared)


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
