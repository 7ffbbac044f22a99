"""Running summaries of a run's merged cases: the totals, metric summaries, latencies and slowest units that
REPORT.json carries for the run and for each variant.

Apart from the aggregate (aggregation.py) because this is the report's arithmetic, not the reading of shards: a
tally is fed one case at a time, in report order (the order the intervals' seeded betting order starts from), and
keeps of each case only what the percentiles and confidence intervals need, 8 bytes a score or latency.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from evaluator.contract import LatencySummary, MetricSummary, ReportCase, SlowCase, Totals, unit_key
from evaluator.stats import Interval, percentile, score_interval, wilson_interval


def latency_summary(values: Sequence[float]) -> LatencySummary:
    ordered = sorted(values)
    return LatencySummary(
        count=len(values),
        mean=sum(values) / len(values) if values else None,
        p50=percentile(ordered, 50, ordered=True),
        p95=percentile(ordered, 95, ordered=True),
        max=ordered[-1] if ordered else None,
    )


class Summary:
    """Totals, metric summaries (with confidence intervals), latency and errors of a set of cases."""

    def __init__(
        self,
        totals: Totals,
        pass_rate_ci: tuple[float | None, float | None],
        metrics: dict[str, MetricSummary],
        latency: dict[str, LatencySummary],
        errors_by_kind: dict[str, int],
    ) -> None:
        self.totals = totals
        self.pass_rate_ci = pass_rate_ci
        self.metrics = metrics
        self.latency = latency
        self.errors_by_kind = errors_by_kind


class Tally:
    """Running totals of a set of cases, fed one case (a ReportCase's JSON) at a time: counts, tokens, and the
    scores and latencies the percentiles and intervals need, kept as 8-byte floats."""

    def __init__(self) -> None:
        self.cases = self.passed = self.errored = 0
        self.prompt_tokens = self.completion_tokens = self.calls = 0
        self.metric_scores: dict[str, array[float]] = {}
        self.metric_pass: Counter[str] = Counter()
        self.metric_count: Counter[str] = Counter()
        self.metric_errors: Counter[str] = Counter()
        self.thresholds: dict[str, float] = {}
        self.latency: dict[str, array[float]] = {}
        self.errors_by_kind: Counter[str] = Counter()
        self.intervals: dict[tuple[str, float], Interval] = {}  # computed ahead (`Summaries.compute_intervals`)

    def add(self, case: dict[str, Any]) -> None:
        error = case.get("error")
        self.cases += 1
        if error is not None:
            self.errored += 1
            self.errors_by_kind[error["kind"]] += 1
        elif case["success"]:
            self.passed += 1
        thresholds, scores, counts = self.thresholds, self.metric_scores, self.metric_count
        for name, outcome in case["metrics"].items():
            threshold = outcome.get("threshold")
            if threshold is not None and name not in thresholds:
                thresholds[name] = threshold
            if outcome.get("error"):
                self.metric_errors[name] += 1
                continue
            if error is not None:  # an errored case is left out of every quality number (compare.pair_up)
                continue
            counts[name] += 1
            score = outcome.get("score")
            if score is not None:
                kept = scores.get(name)
                if kept is None:
                    kept = scores[name] = array("d")
                kept.append(score)
            if outcome["success"]:
                self.metric_pass[name] += 1
        calls = case["calls"]
        self.calls += len(calls)
        for call in calls:
            self.prompt_tokens += call.get("prompt_tokens", 0)
            self.completion_tokens += call.get("completion_tokens", 0)
            if not call.get("error"):
                latencies = self.latency.get(call["type"])
                if latencies is None:
                    latencies = self.latency[call["type"]] = array("d")
                latencies.append(call["latency_s"])

    def extend(self, later: Tally) -> None:
        """Adds a tally of the cases that follow this one's in report order: what adding them one by one here
        would give (scores and latencies in the same order, first thresholds and error kinds first seen kept)."""
        self.cases += later.cases
        self.passed += later.passed
        self.errored += later.errored
        self.prompt_tokens += later.prompt_tokens
        self.completion_tokens += later.completion_tokens
        self.calls += later.calls
        for name, scores in later.metric_scores.items():
            self.metric_scores.setdefault(name, array("d")).extend(scores)
        for name, latencies in later.latency.items():
            self.latency.setdefault(name, array("d")).extend(latencies)
        for name, threshold in later.thresholds.items():
            self.thresholds.setdefault(name, threshold)
        self.metric_pass.update(later.metric_pass)
        self.metric_count.update(later.metric_count)
        self.metric_errors.update(later.metric_errors)
        self.errors_by_kind.update(later.errors_by_kind)

    def summary(self, confidence: float) -> Summary:
        metrics = {}
        for name in sorted(set(self.metric_count) | set(self.metric_errors)):
            scores = self.metric_scores.get(name, array("d"))
            count = self.metric_count[name]
            mean = (self.intervals.get((name, confidence)) or score_interval(scores, confidence)) if scores else None
            rate = wilson_interval(self.metric_pass[name], count, confidence) if count else None
            ordered = sorted(scores)
            metrics[name] = MetricSummary(
                count=count,
                errors=self.metric_errors[name],
                mean=sum(scores) / len(scores) if scores else None,
                p50=percentile(ordered, 50, ordered=True),
                p95=percentile(ordered, 95, ordered=True),
                pass_rate=self.metric_pass[name] / count if count else None,
                threshold=self.thresholds.get(name),
                ci_low=mean.low if mean is not None and math.isfinite(mean.low) else None,
                ci_high=mean.high if mean is not None and math.isfinite(mean.high) else None,
                pass_rate_ci_low=rate.low if rate is not None else None,
                pass_rate_ci_high=rate.high if rate is not None else None,
            )
        scored = self.cases - self.errored
        rate = wilson_interval(self.passed, scored, confidence) if scored else None
        return Summary(
            totals=Totals(
                cases=self.cases,
                passed=self.passed,
                failed=self.cases - self.passed - self.errored,
                errored=self.errored,
                pass_rate=self.passed / scored if scored else None,
                error_rate=self.errored / self.cases if self.cases else None,
                wall_time_s=None,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=self.completion_tokens,
                calls=self.calls,
            ),
            pass_rate_ci=(rate.low, rate.high) if rate is not None else (None, None),
            metrics=metrics,
            latency={kind: latency_summary(values) for kind, values in sorted(self.latency.items())},
            errors_by_kind=dict(self.errors_by_kind.most_common()),
        )


class Summaries:
    """The run's tallies (overall and per variant), its ten slowest units, and, with variants, the cases the
    paired comparisons need (those pair each case's scores across variants, so they hold every case; each is kept
    without its texts, calls and reasons, which no comparison reads).

    A run of one variant, whose every case is of that variant (`shared`), has one tally: the variant's numbers
    are the run's."""

    SLOWEST = 10

    def __init__(self, variants: list[str], *, keep_cases: bool, shared: bool = False) -> None:
        self.overall = Tally()
        self.by_variant = {name: self.overall if shared else Tally() for name in variants}
        self.compared: list[ReportCase] = []
        self.keep_cases, self.shared = keep_cases, shared
        self._slow: list[tuple[float, int, SlowCase]] = []
        self._seen = 0

    def add(self, case: dict[str, Any]) -> None:
        self.overall.add(case)
        tally = self.by_variant.get(case["variant"])
        if tally is not None and tally is not self.overall:
            tally.add(case)
        self._seen += 1
        duration = case["duration_s"]
        # a later case of equal duration never displaces an earlier one (the heap's second key is -seen)
        if len(self._slow) < self.SLOWEST or duration > self._slow[0][0]:
            slow = SlowCase(case_id=unit_key(case["variant"], case["case_id"]), shard=case["shard"],
                            duration_s=duration)  # fmt: skip
            item = (duration, -self._seen, slow)
            if len(self._slow) < self.SLOWEST:
                heapq.heappush(self._slow, item)
            else:
                heapq.heapreplace(self._slow, item)
        if self.keep_cases:
            self.compared.append(ReportCase.model_validate(_scored_part(case)))

    def extend(self, later: Summaries) -> None:
        """Adds the summaries of the cases that follow this one's in report order (the same variants): what adding
        them one by one here would give. The slowest units are the top ten of both, the later's counted after."""
        self.overall.extend(later.overall)
        for name, tally in self.by_variant.items():
            if tally is not self.overall:
                tally.extend(later.by_variant[name])
        # each keeps the top ten by (duration, -seen) of its cases (`add`): the top ten of both lists is the run's
        shifted = [(duration, seen - self._seen, slow) for duration, seen, slow in later._slow]
        self._slow = sorted([*self._slow, *shifted], reverse=True)[: self.SLOWEST]
        heapq.heapify(self._slow)
        self._seen += later._seen
        self.compared.extend(later.compared)

    def reported(self) -> list[Tally]:
        """The tallies whose summaries the report takes: the run's, and each variant's that is not all of the run
        (`build_report` gives such a variant the run's numbers)."""
        parts = [tally for tally in self.by_variant.values() if tally.cases != self.overall.cases]
        return [self.overall, *{id(tally): tally for tally in parts}.values()]

    def interval_jobs(self) -> list[tuple[Tally, str]]:
        """The metric means' intervals the reported tallies' summaries take: (tally, metric) pairs."""
        return [(tally, name) for tally in self.reported() for name, scores in tally.metric_scores.items() if scores]

    def compute_intervals(self, confidence: float, mapper: Mapper = map) -> None:
        """Computes the `interval_jobs` ahead, with `mapper` (a process pool's `map` shares them across CPUs): the
        same numbers the summaries would compute, most of the report's arithmetic on scores in 0..1 (a dozen
        passes over each metric's scores)."""
        jobs = self.interval_jobs()
        found = mapper(_score_interval, [(tally.metric_scores[name], confidence) for tally, name in jobs])
        for (tally, name), interval in zip(jobs, found, strict=True):
            tally.intervals[(name, confidence)] = interval

    def slowest(self) -> list[SlowCase]:
        """Longest first; among equal durations, the earlier in report order (a stable sort's order)."""
        return [slow for _, _, slow in sorted(self._slow, key=lambda item: (-item[0], -item[1]))]


_IntervalJob = tuple["array[float]", float]  # a metric's scores and the confidence
Mapper = Callable[[Callable[[_IntervalJob], Interval], list[_IntervalJob]], Iterable[Interval]]


def _score_interval(job: _IntervalJob) -> Interval:
    """`score_interval` of one metric's scores at a confidence (a function of one argument, for a pool's map)."""
    return score_interval(*job)


def _scored_part(case: dict[str, Any]) -> dict[str, Any]:
    """What the paired comparisons read of a case (its identity, error, success and metric outcomes), without the
    texts, calls and reasons that make a case large."""
    return {
        **case,
        "input": "",
        "expected_output": None,
        "actual_output": None,
        "calls": [],
        "metadata": {},
        "metrics": {name: {**outcome, "reason": None} for name, outcome in case["metrics"].items()},
    }
