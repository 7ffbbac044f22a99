"""Which units of work belong to which shard: deterministic, so every pod and every retry agrees.

A unit is a case answered by one variant (`evaluator.selection.Unit`; a plain `Case` works the same): shards cover
the whole (variant, case) product, so a suite of 3 variants needs 3 times the shards (or `many` chunks) of one.

Three modes:
- contiguous: shard k gets cases [k*n/N, (k+1)*n/N); the default, and easy to read in logs.
- balanced: longest-processing-time first over a previous run's per-case durations, so no shard straggles
  (without them, a first run: over input lengths).
- many: fixed small chunks (`completions` far above `parallelism`); the Job controller hands the next index to
  whichever pod is free, which balances load dynamically without an external queue.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from evaluator.errors import InputError

ShardingMode = Literal["contiguous", "balanced", "many"]  # how units are assigned to shards (a suite's `sharding.mode`)


class Work(Protocol):
    """What sharding needs of a unit of work: a name (for timings) and a position (for order)."""

    @property
    def key(self) -> str: ...

    @property
    def index(self) -> int: ...


W = TypeVar("W", bound=Work)


@dataclass(frozen=True)
class ShardPlan(Generic[W]):
    index: int
    total: int
    mode: str
    units: list[W]

    def describe(self, noun: str = "cases", where: str = "dataset positions") -> str:
        """One log line: the index, its share and, when contiguous, its range (`units` and their positions in
        the (case x variant) product when a suite has variants)."""
        head = f"shard {self.index}/{self.total} ({self.mode}): {len(self.units)} {noun}"
        if not self.units:
            return head
        positions = [c.index for c in self.units]
        if positions == list(range(positions[0], positions[-1] + 1)):
            return f"{head}, {where} {positions[0]}..{positions[-1]}"
        return f"{head}, {where} {positions[0]}..{positions[-1]} (not contiguous)"


def shard_count_for(mode: str, units: int, requested: int | None, chunk_size: int) -> int:
    """The number of shards a Job needs; in 'many' mode it follows from the chunk size and the units (cases x
    variants)."""
    if mode == "many":
        return max(1, math.ceil(units / chunk_size))
    return requested or 1


def assign(
    cases: Sequence[W],
    index: int,
    total: int,
    mode: str = "contiguous",
    *,
    durations: Mapping[str, float] | None = None,
    chunk_size: int = 25,
) -> ShardPlan[W]:
    """The units of shard `index` out of `total`."""
    if total < 1:
        raise InputError(f"total shards must be at least 1, got {total}")
    if not 0 <= index < total:
        raise InputError(f"shard index {index} is outside 0..{total - 1}")
    if mode == "contiguous":
        start, stop = len(cases) * index // total, len(cases) * (index + 1) // total
        chosen = list(cases[start:stop])
    elif mode == "many":
        expected = shard_count_for("many", len(cases), total, chunk_size)
        if total != expected:
            raise InputError(
                f"'many' sharding with chunk_size {chunk_size} over {len(cases)} units needs exactly "
                f"{expected} shards (Job completions), got {total}"
            )
        chosen = list(cases[index * chunk_size : (index + 1) * chunk_size])
    elif mode == "balanced":
        chosen = _longest_first(cases, total, durations or _input_lengths(cases))[index]
    else:
        raise InputError(f"unknown sharding mode {mode!r} (contiguous, balanced, many)")
    return ShardPlan(index=index, total=total, mode=mode, units=chosen)


def _input_lengths(cases: Sequence[W]) -> dict[str, float]:
    """Without timings (a first run): a unit's input length stands in for its duration, a split every shard computes
    the same way from the dataset alone."""
    return {c.key: 1.0 + len(str(getattr(getattr(c, "case", c), "input", ""))) for c in cases}


def _longest_first(cases: Sequence[W], total: int, durations: Mapping[str, float]) -> list[list[W]]:
    """LPT scheduling; unknown units cost the mean of the known ones. Ties break on position."""
    known = [durations[c.key] for c in cases if c.key in durations]
    default = sum(known) / len(known) if known else 1.0
    order = sorted(cases, key=lambda c: (-durations.get(c.key, default), c.index))
    loads = [(0.0, shard) for shard in range(total)]
    heapq.heapify(loads)
    buckets: list[list[W]] = [[] for _ in range(total)]
    for case in order:
        load, shard = heapq.heappop(loads)
        buckets[shard].append(case)
        heapq.heappush(loads, (load + durations.get(case.key, default), shard))
    for bucket in buckets:
        bucket.sort(key=lambda c: c.index)
    return buckets


def index_from_environment(flag: int | None, environ: Mapping[str, str] | None = None) -> int | None:
    """The shard index: the flag, else JOB_COMPLETION_INDEX as the Indexed Job controller sets it."""
    env = os.environ if environ is None else environ
    if flag is not None:
        return flag
    raw = env.get("JOB_COMPLETION_INDEX")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"JOB_COMPLETION_INDEX must be an integer, got {raw!r}") from None
