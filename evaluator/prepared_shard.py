"""One shard of a run planned once: the step from `options.PreparedRun` (what the CLI, the Python API and a
`run --workers` worker build) to the engine's `ShardRunner`.

It lives above both on purpose: the engine knows nothing of how a run is described or planned, and the options
know nothing of the engine, so neither imports the other.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from evaluator.engine.outcome import RunIdentity
from evaluator.engine.runner import ShardRunner

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from evaluator.engine.limiter import AdaptiveLimiter
    from evaluator.engine.outcome import ShardOutcome
    from evaluator.options import PreparedRun
    from evaluator.stopping import Stop

log = logging.getLogger("evaluator.run")


async def evaluate_prepared(
    prepared: PreparedRun, out: Path, index: int, *, stop: Stop,
    on_progress: Callable[[int, int], None] | None = None, on_drained: Callable[[], None] | None = None,
    limiters: dict[str, AdaptiveLimiter] | None = None,
) -> ShardOutcome:  # fmt: skip
    """Shard `index` of a run planned once (`options.prepare_run`): what one pod does, and what a `run --workers`
    worker does for each shard it takes (`on_drained` says when it may take the next one; `limiters` keep the
    worker at one concurrency limit per server however many of its shards overlap)."""
    options = prepared.options
    plan = prepared.shard(index)  # a bad index is an input error before anything is logged or touched
    identity = RunIdentity(
        run_id=prepared.run_id, commit=options.commit, suite_hash=prepared.loaded.suite_hash,
        suite_name=prepared.loaded.suite.name,
    )  # fmt: skip
    log.info("run %s, suite %s, commit %s, %s", identity.run_id, identity.suite_name, identity.commit[:12],
             prepared.plan.describe())  # fmt: skip
    runner = ShardRunner(
        prepared.loaded, plan, identity, out, profile=prepared.plan.selection.info,
        steps_dir=options.steps_dir, variants=prepared.plan.variants, stop=stop, use_cache=options.use_cache,
        on_progress=on_progress, on_drained=on_drained, limiters=limiters,
    )  # fmt: skip
    return await runner.run(retry_errors=options.retry_errors)


def run_prepared(
    prepared: PreparedRun, out: Path, index: int, *, stop: Stop,
    on_progress: Callable[[int, int], None] | None = None,
) -> ShardOutcome:  # fmt: skip
    """`evaluate_prepared` in its own event loop: what one pod does."""
    return asyncio.run(evaluate_prepared(prepared, out, index, stop=stop, on_progress=on_progress))
