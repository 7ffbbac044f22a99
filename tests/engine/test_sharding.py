"""Sharding is a pure function of (cases, index, total, mode): every case lands in exactly one shard."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from evaluator.dataset import Case
from evaluator.sharding import assign, shard_count_for


def make_cases(count: int) -> list[Case]:
    return [Case(id=f"c{i}", index=i, line=i + 1, input=f"q{i}") for i in range(count)]


def partition(cases: list[Case], total: int, mode: str, **kwargs: object) -> list[list[str]]:
    return [[c.id for c in assign(cases, i, total, mode, **kwargs).units] for i in range(total)]  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=300), st.integers(min_value=1, max_value=40))
def test_contiguous_is_an_exact_partition_with_balanced_sizes(count: int, total: int) -> None:
    cases = make_cases(count)
    shards = partition(cases, total, "contiguous")
    assert sum(shards, []) == [c.id for c in cases]
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    assert shards == partition(cases, total, "contiguous")


@given(
    st.lists(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=200),
    st.integers(min_value=1, max_value=16),
)
def test_balanced_is_a_partition_within_the_list_scheduling_bound(durations: list[float], total: int) -> None:
    cases = make_cases(len(durations))
    timing = {f"c{i}": d for i, d in enumerate(durations)}
    shards = partition(cases, total, "balanced", durations=timing)
    assert sorted(sum(shards, []), key=lambda x: int(x[1:])) == [c.id for c in cases]
    loads = [sum(timing[c] for c in shard) for shard in shards]
    # Graham (1966): any list schedule ends by the average load plus (1 - 1/m) of the longest case.
    assert max(loads) <= sum(durations) / total + max(durations) * (1 - 1 / total) + 1e-9


def _optimal_makespan(durations: list[float], machines: int) -> float:
    """The best possible longest shard, by trying every assignment (small inputs only)."""
    best = float("inf")
    for assignment in itertools.product(range(machines), repeat=len(durations)):
        loads = [0.0] * machines
        for duration, machine in zip(durations, assignment, strict=True):
            loads[machine] += duration
        best = min(best, max(loads))
    return best


@given(
    st.lists(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=7),
    st.integers(min_value=1, max_value=3),
)
def test_balanced_is_within_grahams_lpt_bound_of_the_optimum(durations: list[float], total: int) -> None:
    cases = make_cases(len(durations))
    timing = {f"c{i}": d for i, d in enumerate(durations)}
    shards = partition(cases, total, "balanced", durations=timing)
    makespan = max(sum(timing[c] for c in shard) for shard in shards)
    # Graham (1969): longest-processing-time first is within (4/3 - 1/(3m)) of the optimum, which only an
    # exhaustive search knows (the lower bound max(longest, average) is not the optimum: 5 equal cases on 4 shards).
    assert makespan <= _optimal_makespan(durations, total) * (4 / 3 - 1 / (3 * total)) + 1e-9


def test_balanced_beats_contiguous_on_a_skewed_suite() -> None:
    cases = make_cases(100)
    timing = {f"c{i}": (30.0 if i < 10 else 1.0) for i in range(100)}  # the slow cases are all at the start
    contiguous = max(sum(timing[c] for c in s) for s in partition(cases, 4, "contiguous"))
    balanced = max(sum(timing[c] for c in s) for s in partition(cases, 4, "balanced", durations=timing))
    assert contiguous == 315.0 and balanced <= 100.0


def test_balanced_gives_unknown_cases_the_mean_duration() -> None:
    cases = make_cases(6)
    shards = partition(cases, 2, "balanced", durations={"c0": 10.0, "c1": 10.0})
    assert sorted(len(s) for s in shards) == [3, 3]


@given(st.integers(min_value=1, max_value=500), st.integers(min_value=1, max_value=50))
def test_many_small_shards_are_fixed_chunks(count: int, chunk: int) -> None:
    cases = make_cases(count)
    total = shard_count_for("many", count, None, chunk)
    shards = partition(cases, total, "many", chunk_size=chunk)
    assert sum(shards, []) == [c.id for c in cases]
    assert all(len(s) == chunk for s in shards[:-1]) and 1 <= len(shards[-1]) <= chunk


def test_describe_logs_index_and_range() -> None:
    plan = assign(make_cases(10), 1, 3, "contiguous")
    assert plan.describe() == "shard 1/3 (contiguous): 3 cases, dataset positions 3..5"
