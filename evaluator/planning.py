"""A run's work before it starts: load the dataset, select the profile's cases, check them against the metrics,
and lay out the (variant, case) units the shards split. One function, called by every pod, `run --workers`,
`prepare` and the Python API, so they all agree on what the run is."""

from __future__ import annotations

from dataclasses import dataclass

from evaluator.dataset import Case, load_dataset
from evaluator.errors import InputError
from evaluator.preflight import check_cases
from evaluator.selection import Selection, Unit, select, selection_sha256, units_of
from evaluator.sharding import shard_count_for
from evaluator.suite import LoadedSuite


@dataclass(frozen=True)
class RunPlan:
    loaded: LoadedSuite
    selection: Selection
    variants: list[str]
    units: list[Unit]

    @property
    def cases(self) -> list[Case]:
        return self.selection.cases

    def shard_count(self, mode: str, requested: int | None = None) -> int:
        """The Job's completions: `requested` (default 1), or in 'many' mode ceil(units / chunk_size)."""
        return shard_count_for(mode, len(self.units), requested, self.loaded.suite.sharding.chunk_size)

    def describe(self) -> str:
        info = self.selection.info
        chosen = f"profile {info.name!r}: " if info.name else ""
        return (
            f"{chosen}{info.selected_cases} of {info.dataset_cases} cases x {len(self.variants)} variant(s) "
            f"({', '.join(self.variants)}) = {len(self.units)} units"
        )


def plan_run(
    loaded: LoadedSuite, *, profile: str | None = None, variant: str | None = None, limit: int | None = None
) -> RunPlan:
    """Raises InputError for an unknown profile or variant, or a case a metric cannot score. `limit` keeps the
    first N selected cases (in dataset order): a smoke run of the same suite."""
    cases = load_dataset(loaded.dataset_path, loaded.suite.dataset_format)
    selection = limited(select(loaded.suite, cases, profile), limit)
    check_cases(loaded, selection.cases)
    variants = loaded.suite.variant_names
    if variant is not None:
        if variant not in variants:
            raise InputError(f"unknown variant {variant!r} (the suite's variants: {', '.join(variants)})")
        variants = [variant]
    return RunPlan(loaded, selection, variants, units_of(selection.cases, variants))


def limited(selection: Selection, limit: int | None) -> Selection:
    """The first `limit` cases of a selection, recorded as such (`profile.limit`, the counts, the selection's
    hash): a smoke run is a different selection, hence a different run."""
    if limit is None:
        return selection
    if limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    chosen = selection.cases[:limit]
    digest = selection_sha256([c.id for c in chosen])
    info = selection.info.model_copy(update={"limit": limit, "selected_cases": len(chosen), "selection_sha256": digest})
    return Selection(chosen, info)
