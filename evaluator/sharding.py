"""Which cases belong to which shard: deterministic, so every pod and every retry agrees.

Three modes:
- contiguous: shard k gets cases [k*n/N, (k+1)*n/N); the default, and easy to read in logs.
- balanced: longest-processing-time first over a previous run's per-case durations, so no shard straggles.
- many: fixed small chunks (`completions` far above `parallelism`); the Job controller hands the next index to
  whichever pod is free, which balances load dynamically without an external queue.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evaluator.dataset import Case
from evaluator.errors import InputError


@dataclass(frozen=True)
class ShardPlan:
    index: int
    total: int
    mode: str
    cases: list[Case]

    def describe(self) -> str:
        """One log line: the index, its share and, when contiguous, its range."""
        head = f"shard {self.index}/{self.total} ({self.mode}): {len(self.cases)} cases"
        if not self.cases:
            return head
        positions = [c.index for c in self.cases]
        if positions == list(range(positions[0], positions[-1] + 1)):
            return f"{head}, dataset positions {positions[0]}..{positions[-1]}"
        return f"{head}, dataset positions {positions[0]}..{positions[-1]} (not contiguous)"


def shard_count_for(mode: str, cases: int, requested: int | None, chunk_size: int) -> int:
    """The number of shards a Job needs; in 'many' mode it follows from the chunk size."""
    if mode == "many":
        return max(1, math.ceil(cases / chunk_size))
    return requested or 1


def assign(
    cases: Sequence[Case],
    index: int,
    total: int,
    mode: str = "contiguous",
    *,
    durations: Mapping[str, float] | None = None,
    chunk_size: int = 25,
) -> ShardPlan:
    """The cases of shard `index` out of `total`."""
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
                f"'many' sharding with chunk_size {chunk_size} over {len(cases)} cases needs exactly "
                f"{expected} shards (Job completions), got {total}"
            )
        chosen = list(cases[index * chunk_size : (index + 1) * chunk_size])
    elif mode == "balanced":
        chosen = _longest_first(cases, total, durations or {})[index]
    else:
        raise InputError(f"unknown sharding mode {mode!r} (contiguous, balanced, many)")
    return ShardPlan(index=index, total=total, mode=mode, cases=chosen)


def _longest_first(cases: Sequence[Case], total: int, durations: Mapping[str, float]) -> list[list[Case]]:
    """LPT scheduling; unknown cases cost the mean of the known ones. Ties break on dataset order."""
    known = [durations[c.id] for c in cases if c.id in durations]
    default = sum(known) / len(known) if known else 1.0
    order = sorted(cases, key=lambda c: (-durations.get(c.id, default), c.index))
    loads = [(0.0, shard) for shard in range(total)]
    heapq.heapify(loads)
    buckets: list[list[Case]] = [[] for _ in range(total)]
    for case in order:
        load, shard = heapq.heappop(loads)
        buckets[shard].append(case)
        heapq.heappush(loads, (load + durations.get(case.id, default), shard))
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
