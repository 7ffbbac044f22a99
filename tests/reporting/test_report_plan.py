"""`plan` on constructed timings, where every number of the formula can be worked out by hand."""

from __future__ import annotations

import math

import pytest

from evaluator.contract import Report
from evaluator.reporting.capacity import SizingError, measure, size_for
from tests.reporting.real_runs import Timing, make_report


def _timed(n: int = 40, latency: float = 0.25, calls: int = 4, shards: int = 2, attempts: int = 1) -> Report:
    """n cases of `calls` sequential calls of `latency` s each, shards running 4 calls at once."""
    return make_report(n, total_shards=shards, timing=Timing(latency=latency, calls=calls, attempts=attempts))


def test_measure_uses_call_latencies_not_queued_case_durations() -> None:
    m = measure(_timed())
    assert m.service_mean_s == pytest.approx(1.0) and m.service_p95_s == pytest.approx(1.0)
    assert m.case_mean_s == pytest.approx(2.0)
    assert m.calls_per_case == 4 and m.call_mean_s == pytest.approx(0.25)
    assert m.per_shard_calls_in_flight == pytest.approx(4.0)
    assert m.endpoint_in_flight == pytest.approx(8.0)
    assert m.rate_limited == 0 and m.retried_calls == 0


def test_plan_follows_the_documented_formula() -> None:
    # 6,000 cases x 1 s of calls in 10 min: Lc = 6000 / (600 - 1) = 10.02 calls in flight; 4 per pod -> 3 shards.
    p = size_for(_timed(), 6000, 10)
    assert p.calls_in_flight == pytest.approx(6000 / 599)
    assert p.shards == 3 and p.parallelism == 3 and p.per_shard_calls == 4
    assert p.predicted_minutes == pytest.approx((2000 * 1.0 / 4 + 1.0) / 60)
    assert p.predicted_minutes <= 10
    assert p.feasible and p.endpoint_ceiling is None
    assert p.notes == []  # 10 calls in flight: within 1.5 x the 8 measured
    far = size_for(_timed(), 60000, 10)
    assert far.shards == math.ceil(60000 / 599 / 4) and any("extrapolation" in n for n in far.notes)


def test_startup_time_and_per_pod_concurrency_change_the_answer() -> None:
    p = size_for(_timed(), 6000, 10, startup_s=60, per_shard_calls=16)
    assert p.calls_in_flight == pytest.approx(6000 / (600 - 1 - 60))
    assert p.shards == 1 and p.per_shard_calls == math.ceil(6000 / 539)


def test_an_endpoint_ceiling_makes_the_target_infeasible_and_gives_the_best_time() -> None:
    p = size_for(_timed(), 6000, 10, endpoint_concurrency=5)
    assert not p.feasible
    assert p.best_minutes == pytest.approx((6000 / 5 + 1) / 60)
    assert p.calls_in_flight == 5 and p.shards == 2 and p.per_shard_calls == 3


def test_retries_in_the_measured_run_set_the_ceiling() -> None:
    p = size_for(_timed(attempts=2), 6000, 10)
    assert p.endpoint_ceiling == pytest.approx(8.0)
    assert not p.feasible and "160 retried" in p.ceiling_source


def test_a_report_without_timings_is_an_input_error() -> None:
    report = make_report(3, timing=Timing(calls=0))
    with pytest.raises(SizingError, match="no case with a timed call"):
        size_for(report, 10, 1)
    with pytest.raises(SizingError):
        size_for(_timed(), 0, 1)
