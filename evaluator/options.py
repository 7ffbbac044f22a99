"""How a run is made, besides its suite and its results folder: one options object for the CLI and the Python API.

`RunOptions` holds what `evaluator run`'s flags say (and `evaluator.run_shard`'s keywords); `prepare_run` turns a
suite and options into a `PreparedRun` once per process: the plan (dataset loaded, cases selected and checked),
the sharding mode and shard count, the balancing timings and the run id. Each shard is then assigned from that
one plan, so a worker process that runs shard after shard plans once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from evaluator.errors import InputError
from evaluator.stopping import DEFAULT_GRACE_S

if TYPE_CHECKING:
    from evaluator.contract import Report
    from evaluator.planning import RunPlan
    from evaluator.selection import Unit
    from evaluator.sharding import ShardPlan
    from evaluator.suite import LoadedSuite

log = logging.getLogger("evaluator.run")


@dataclass(frozen=True)
class RunOptions:
    """What decides a run besides the suite: the selection (`profile`, `variant`, `limit`), the sharding
    (`sharding` mode, `total_shards`, `timings` of a previous report for 'balanced'), the identity (`run_id`,
    `commit`) and how the shards behave (`retry_errors`, `steps_dir`, `use_cache`, `stop_grace`). None means the
    suite's or the default: `total_shards` 1 (or what 'many' mode needs), `run_id` `default_run_id(...)`."""

    profile: str | None = None
    variant: str | None = None
    limit: int | None = None
    sharding: str | None = None
    total_shards: int | None = None
    timings: Path | Report | None = None
    run_id: str | None = None
    commit: str = "unknown"
    retry_errors: bool = True
    steps_dir: Path | None = None
    use_cache: bool = True
    stop_grace: float = DEFAULT_GRACE_S

    def worker_arguments(self) -> list[str]:
        """The `evaluator run` flags that give a worker process these options (timings as the report's path)."""
        args: list[str] = []
        if self.timings is not None and not isinstance(self.timings, Path):
            raise InputError("worker processes need the timings report as a path")
        for flag, value in (("--profile", self.profile), ("--variant", self.variant), ("--limit", self.limit),
                            ("--sharding", self.sharding), ("--total-shards", self.total_shards),
                            ("--timings", self.timings), ("--run-id", self.run_id), ("--commit", self.commit),
                            ("--steps-dir", self.steps_dir)):  # fmt: skip
            if value is not None:
                args += [flag, str(value)]
        if not self.retry_errors:
            args.append("--keep-errors")
        if not self.use_cache:
            args.append("--no-cache")
        return [*args, "--stop-grace", f"{self.stop_grace:g}"]


class RunSettings(TypedDict, total=False):
    """`RunOptions`' fields as keyword arguments (`evaluator.run_shard(suite, out, profile="pr", ...)`)."""

    profile: str | None
    variant: str | None
    limit: int | None
    sharding: str | None
    total_shards: int | None
    timings: Path | Report | None
    run_id: str | None
    commit: str
    retry_errors: bool
    steps_dir: str | Path | None
    use_cache: bool
    stop_grace: float


def options_from(options: RunOptions | None, settings: RunSettings) -> RunOptions:
    """`options` with the keyword `settings` on top (a `steps_dir` given as a string becomes a path)."""
    from dataclasses import replace

    values = dict(settings)
    if isinstance(values.get("steps_dir"), str):
        values["steps_dir"] = Path(str(values["steps_dir"]))
    return replace(options or RunOptions(), **values)  # type: ignore[arg-type]


@dataclass
class PreparedRun:
    """A run planned once: its units, sharding and identity; `shard(index)` assigns one shard from them."""

    loaded: LoadedSuite
    plan: RunPlan
    options: RunOptions
    mode: str
    total: int
    run_id: str
    durations: dict[str, float] | None = None
    _shards: dict[int, ShardPlan[Unit]] = field(default_factory=dict)

    def shard(self, index: int) -> ShardPlan[Unit]:
        from evaluator.sharding import assign

        if index not in self._shards:
            self._shards[index] = assign(
                self.plan.units, index, self.total, self.mode, durations=self.durations,
                chunk_size=self.loaded.suite.sharding.chunk_size,
            )  # fmt: skip
        return self._shards[index]


def prepare_run(
    loaded: LoadedSuite, options: RunOptions, *, workers: int | None = None, planned: RunPlan | None = None
) -> PreparedRun:
    """Plans the run (unless `planned` already is, with the same options) and checks its sharding before any
    shard starts (InputError on a bad flag or case)."""
    from evaluator.planning import plan_run

    if planned is None:
        planned = plan_run(loaded, profile=options.profile, variant=options.variant, limit=options.limit)
    mode = options.sharding or loaded.suite.sharding.mode
    total = options.total_shards if options.total_shards is not None else planned.shard_count(mode, workers)
    durations = _durations(options.timings) if mode == "balanced" and options.timings is not None else None
    run_id = options.run_id or default_run_id(loaded, options.commit, options.profile, options.limit)
    prepared = PreparedRun(loaded, planned, options, mode, total, run_id, durations)
    prepared.shard(0)  # validates the shard count against the mode before any shard starts
    return prepared


def _durations(timings: Path | Report) -> dict[str, float] | None:
    """Per-unit durations of a previous report, for 'balanced' sharding; None (split by input length) when the
    report named does not exist yet (a first run on an empty results volume)."""
    if isinstance(timings, Path):
        if not timings.exists():
            log.warning(
                "%s: no previous report (a first run?): 'balanced' sharding splits by input length instead, "
                "computed the same way by every shard",
                timings,
            )
            return None
        from evaluator.contract import load_report

        return load_report(timings).durations()
    return timings.durations()


def default_run_id(suite: LoadedSuite, commit: str, profile: str | None = None, limit: int | None = None) -> str:
    """`<suite-hash[:12]>-<commit[:12]>`, plus `-<profile>` for a profile's run (a `pr` and a `nightly` run of one
    commit are different runs) and `-first<N>` for a `--limit N` smoke run. The suite hash covers what decides
    the answers (dataset, variants' targets), not the metrics, the judge or the gate: re-scoring is the same run."""
    return (
        f"{suite.suite_hash[:12]}-{commit[:12]}"
        + (f"-{profile}" if profile else "")
        + (f"-first{limit}" if limit is not None else "")
    )
