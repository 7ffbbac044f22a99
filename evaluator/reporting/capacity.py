"""Capacity: how many shards (pods) and what parallelism finish N cases in T minutes against one endpoint.

Measure first, then size the Job. The unit of work is the endpoint call, because that is what the endpoint
and each pod's concurrency limit (the suite's `concurrency.max_calls_per_endpoint`) bound; a case's own
duration includes time queued behind that limit and so depends on the layout being sized. From a
previous run's aggregate:

    w    service time per case = sum of its calls' latency_s (mean over cases that did not error); p95w its
         95th percentile
    Pc   calls in flight per pod: per shard, sum(call latency)/shard wall time (Little's law); median shard
    C    endpoint ceiling, calls in flight: --endpoint-concurrency; else, when the run saw 429s or retried
         calls, the level the run reached = sum(all call latency)/wall time (where the endpoint pushed back);
         else unknown (at least that level), and a sizing beyond 1.5x that level is flagged as extrapolation.

For N cases in T minutes with a pod start-up of s seconds:

    B  = 60*T - p95w - s            time for the bulk; the last case may start just before the end
    Lc = N*w / B                    calls that must be in flight (Little's law)
    if Lc > C: infeasible; best time = (N*w/C + p95w + s)/60 minutes, and the sizing is for C
    shards        S = ceil(Lc / Pc) Job completions = parallelism = S (one pod per shard, all at once)
    per shard     c = ceil(Lc / S)  calls in flight per pod: the suite's concurrency.max_calls_per_endpoint
    predicted       (ceil(N/S)*w/c + p95w + s)/60 minutes

It assumes call latency stays as measured, i.e. that the endpoint is not pushed past the level the measured
run saw; the predicted time is conservative by up to one case's service time (the tail term).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from evaluator.contract import Report, ReportCase
from evaluator.errors import InputError
from evaluator.stats import percentile


class SizingError(InputError):
    """The report has no timing to size from, or the question makes no sense."""


@dataclass(frozen=True)
class Measured:
    """What a previous run tells about one case and the endpoint."""

    cases: int
    service_mean_s: float  # w
    service_p95_s: float  # p95w
    case_mean_s: float  # wall-clock duration per case, queueing included (for information)
    case_p95_s: float
    calls_per_case: float
    call_mean_s: float
    per_shard_calls_in_flight: float  # Pc
    wall_time_s: float
    shards: int
    endpoint_in_flight: float  # calls in flight on average over the run
    rate_limited: int  # cases or calls that ended rate-limited (429 after retries)
    retried_calls: int  # extra attempts (429, 5xx, timeouts that were retried)


@dataclass(frozen=True)
class Sizing:
    """How many shards and calls in flight finish `cases` in `minutes`, from what a measured run showed."""

    measured: Measured
    cases: int
    minutes: float
    shards: int
    per_shard_calls: int
    calls_in_flight: float
    endpoint_ceiling: float | None
    ceiling_source: str
    feasible: bool
    predicted_minutes: float
    best_minutes: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def parallelism(self) -> int:
        return self.shards


def _latencies(case: ReportCase) -> list[float]:
    return [c.latency_s for c in case.calls]


def _p95(values: list[float]) -> float:
    return percentile(values, 95) or 0.0


def measure(report: Report) -> Measured:
    """Per-case service times and the endpoint's measured concurrency from an aggregate."""
    cases = [c for c in report.cases if c.calls]
    if not cases:
        raise SizingError("the report has no case with a timed call (cases[].calls[].latency_s): nothing to size from")
    # A case that errored stopped early: its calls load the endpoint, but it says nothing of a case's cost.
    finished = [c for c in cases if c.error is None] or cases
    service_all = [sum(_latencies(c)) for c in cases]
    service = [sum(_latencies(c)) for c in finished]
    durations = [c.duration_s for c in finished]
    calls = [call for c in cases for call in c.calls]
    wall = report.totals.wall_time_s or 0.0
    shards = report.shards
    by_shard: dict[int, float] = {}
    for c, s in zip(cases, service_all, strict=True):
        by_shard[c.shard] = by_shard.get(c.shard, 0.0) + s
    per_shard = [
        by_shard[p.index] / p.wall_time_s
        for p in shards.per_shard
        if p.wall_time_s and p.wall_time_s > 0 and p.index in by_shard
    ]
    if not per_shard and wall > 0:
        per_shard = [sum(service_all) / wall / max(1, len(by_shard))]
    limited = sum(1 for c in cases if c.error is not None and c.error.kind == "rate_limited") + sum(
        1 for call in calls if call.error == "rate_limited"
    )
    return Measured(
        cases=len(finished),
        service_mean_s=statistics.fmean(service),
        service_p95_s=_p95(service),
        case_mean_s=statistics.fmean(durations),
        case_p95_s=_p95(durations),
        calls_per_case=sum(len(c.calls) for c in finished) / len(finished),
        call_mean_s=statistics.fmean(call.latency_s for call in calls),
        per_shard_calls_in_flight=statistics.median(per_shard) if per_shard else 1.0,
        wall_time_s=wall,
        shards=max(1, (shards.expected or 0) - len(shards.missing)),
        endpoint_in_flight=sum(service_all) / wall if wall > 0 else 0.0,
        rate_limited=max(limited, report.errors_by_kind.get("rate_limited", 0)),
        retried_calls=sum(max(0, call.attempts - 1) for call in calls),
    )


def predict_minutes(
    measured: Measured, cases: int, shards: int, per_shard_calls: float, startup_s: float = 0.0
) -> float:
    """The formula's run time for a given layout."""
    bulk = math.ceil(cases / shards) * measured.service_mean_s / per_shard_calls
    return (bulk + measured.service_p95_s + startup_s) / 60


def size_for(
    report: Report,
    cases: int,
    minutes: float,
    *,
    endpoint_concurrency: float | None = None,
    per_shard_calls: int | None = None,
    startup_s: float = 0.0,
) -> Sizing:
    """Apply the module's formula; see the module docstring for every symbol."""
    if cases <= 0 or minutes <= 0:
        raise SizingError("--cases and --minutes must be positive")
    meas = measure(report)
    notes: list[str] = []
    w, p95w = meas.service_mean_s, meas.service_p95_s
    if endpoint_concurrency is not None:
        ceiling: float | None = endpoint_concurrency
        source = "given (--endpoint-concurrency)"
    elif meas.rate_limited or meas.retried_calls:
        ceiling = meas.endpoint_in_flight
        source = (
            f"measured: the run reached {meas.endpoint_in_flight:.1f} calls in flight with "
            f"{meas.rate_limited} rate-limited and {meas.retried_calls} retried call(s)"
        )
    else:
        ceiling = None
        source = f"unknown: no 429 or retry at {meas.endpoint_in_flight:.1f} calls in flight (the ceiling is higher)"
    per_pod = float(per_shard_calls) if per_shard_calls else max(1.0, meas.per_shard_calls_in_flight)
    feasible = True
    budget = minutes * 60 - p95w - startup_s
    if budget <= 0:
        feasible = False
        notes.append(f"{minutes:g} min is shorter than one slow case ({p95w:.1f} s of calls) plus start-up")
        budget = max(w, 1e-3)
    need = cases * w / budget
    best: float | None = None
    if ceiling is not None and ceiling > 0:
        best = (cases * w / ceiling + p95w + startup_s) / 60
        if need > ceiling * (1 + 1e-9):
            feasible = False
            notes.append(
                f"needs {need:.1f} calls in flight but the endpoint serves {ceiling:.1f}: the best it can do is "
                f"{best:.1f} min; sized for the ceiling instead"
            )
            need = ceiling
    elif need > meas.endpoint_in_flight * 1.5:
        notes.append(
            f"extrapolation: {need:.1f} calls in flight is beyond the {meas.endpoint_in_flight:.1f} measured; "
            "measure at that level (or pass --endpoint-concurrency) before trusting this"
        )
    shards = max(1, math.ceil(need / per_pod - 1e-9))
    per_shard = max(1, math.ceil(need / shards - 1e-9))
    return Sizing(
        measured=meas,
        cases=cases,
        minutes=minutes,
        shards=shards,
        per_shard_calls=per_shard,
        calls_in_flight=need,
        endpoint_ceiling=ceiling,
        ceiling_source=source,
        feasible=feasible,
        predicted_minutes=predict_minutes(meas, cases, shards, per_shard, startup_s),
        best_minutes=best,
        notes=notes,
    )
