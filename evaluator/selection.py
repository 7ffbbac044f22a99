"""Which work a run does: the profile's cases, answered by every variant.

A profile (seed 001 section 1: a small set on every pull request, everything at night) selects cases; the unit of
work is then one (variant, case) pair, and shards cover that product. The product is laid out case-major (case 0
by every variant, then case 1, ...), so a contiguous shard holds whole cases for every variant: a lost shard
takes a case away from every side of a comparison at once, never from one side only.

Sampling is deterministic: the same suite, dataset and seed select the same cases on every machine and every
pod, because every shard of a run computes the selection itself (there is no coordinator to ask).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from evaluator.contract import ProfileInfo, unit_key
from evaluator.dataset import Case
from evaluator.errors import InputError
from evaluator.suite import Profile, Suite

UNTAGGED = "(untagged)"


@dataclass(frozen=True, slots=True)
class Unit:
    """One case answered by one variant; `index` is its position in the case-major product."""

    variant: str
    case: Case
    index: int

    @property
    def key(self) -> str:
        return unit_key(self.variant, self.case.id)


@dataclass(frozen=True)
class Selection:
    """The cases a run evaluates, and how they were chosen (recorded in every manifest and the report)."""

    cases: list[Case]
    info: ProfileInfo


def units_of(cases: Sequence[Case], variants: Sequence[str]) -> list[Unit]:
    """Every (variant, case), case-major: unit i*V + j is case i answered by variant j."""
    count = len(variants)
    return [
        Unit(variant, case, position * count + slot)
        for position, case in enumerate(cases)
        for slot, variant in enumerate(variants)
    ]


def select(suite: Suite, cases: Sequence[Case], profile: str | None) -> Selection:
    """The cases of `profile` (None: every case), in dataset order."""
    if profile is None:
        return Selection(list(cases), _info(None, None, cases, cases))
    chosen = suite.profiles.get(profile)
    if chosen is None:
        known = ", ".join(sorted(suite.profiles)) or "none defined"
        raise InputError(f"unknown profile {profile!r} (the suite's profiles: {known})")
    pool = [c for c in cases if (chosen.tags is None or set(c.tags) & set(chosen.tags)) and _matches(c, chosen)]
    if not pool:
        wanted = [f"any of the tags {chosen.tags}"] if chosen.tags is not None else []
        wanted += [f"metadata {key} in {values}" for key, values in (chosen.metadata or {}).items()]
        raise InputError(f"profile {profile!r} selects no case: no case has {' and '.join(wanted)}")
    if chosen.sample is not None and chosen.sample < len(pool):
        pool = stratified_sample(pool, chosen.sample, chosen.seed)
    return Selection(pool, _info(profile, chosen, cases, pool))


def _matches(case: Case, profile: Profile) -> bool:
    """The case's metadata has, for every key of the profile's `metadata`, one of the listed values. A value is
    compared as the dataset holds it, and as text (a CSV column is text: `3` matches `"3"`)."""
    for key, allowed in (profile.metadata or {}).items():
        if key not in case.metadata:
            return False
        value = case.metadata[key]
        if value not in allowed and _text(value) not in {_text(a) for a in allowed}:
            return False
    return True


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def stratum(case: Case) -> str:
    """A case's stratum: its first tag."""
    return case.tags[0] if case.tags else UNTAGGED


def allocate(sizes: dict[str, int], sample: int) -> dict[str, int]:
    """How many cases each stratum gives: proportional to its size, largest remainders first (ties by name), and
    at least one per stratum while the sample has room for every stratum."""
    total = sum(sizes.values())
    if sample >= total:
        return dict(sizes)
    quota = {name: sample * size / total for name, size in sizes.items()}
    counts = {name: math.floor(q) for name, q in quota.items()}
    if sample >= len(sizes):
        counts = {name: max(1, count) for name, count in counts.items()}
    while sum(counts.values()) < sample:
        room = [n for n in sorted(sizes) if counts[n] < sizes[n]]
        best = max(room, key=lambda n: (quota[n] - counts[n], -sorted(sizes).index(n)))
        counts[best] += 1
    while sum(counts.values()) > sample:  # the one-per-stratum floor overshot: take from the most over-served
        spare = [n for n in sorted(sizes) if counts[n] > 1]
        worst = min(spare, key=lambda n: (quota[n] - counts[n], sorted(sizes).index(n)))
        counts[worst] -= 1
    return counts


def stratified_sample(pool: Sequence[Case], sample: int, seed: int) -> list[Case]:
    """`sample` cases of `pool`, stratified by first tag; each stratum drawn by `random.Random(f"{seed}:{name}")`
    (string seeds hash the same on every platform and Python run), returned in dataset order."""
    strata: dict[str, list[Case]] = {}
    for case in pool:
        strata.setdefault(stratum(case), []).append(case)
    counts = allocate({name: len(members) for name, members in strata.items()}, sample)
    chosen: set[str] = set()
    for name, members in strata.items():
        rng = random.Random(f"{seed}:{name}")
        chosen.update(c.id for c in rng.sample(members, counts[name]))
    return [c for c in pool if c.id in chosen]


def selection_sha256(case_ids: Sequence[str]) -> str:
    """Identifies a selection: two runs with the same value evaluated the same cases."""
    return hashlib.sha256("\n".join(case_ids).encode()).hexdigest()


def _info(name: str | None, profile: Profile | None, cases: Sequence[Case], chosen: Sequence[Case]) -> ProfileInfo:
    return ProfileInfo(
        name=name,
        tags=list(profile.tags) if profile is not None and profile.tags is not None else None,
        metadata=dict(profile.metadata) if profile is not None and profile.metadata is not None else None,
        sample=profile.sample if profile is not None else None,
        seed=profile.seed if profile is not None else None,
        dataset_cases=len(cases),
        selected_cases=len(chosen),
        selection_sha256=selection_sha256([c.id for c in chosen]),
    )
