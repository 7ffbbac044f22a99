"""What scores a shard's answers (DeepEval's metrics, the judge, the G-Eval steps), made ready beside the first calls.

Importing DeepEval costs a process about 1-1.5 s of CPU (pydantic building OpenAI's and DeepEval's models): more
than five rounds of calls to a 200 ms server, paid by every pod and every `run --workers` worker before it could
ask anything. Nothing a target call needs comes from DeepEval, so the engine's call side (runner, unit, clients,
HTTP) never imports it at module level: `start_import` imports the scoring side on a thread as early as a process
knows it will evaluate, a fresh shard asks its targets at once, and the answers that come back before the scorer is
ready wait for it (`ShardRunner._evaluate` parks them) and are scored as soon as it is.

The thread only imports; every DeepEval object is built on the event loop's thread once `imported()` returned.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evaluator.identity import metric_fingerprints

if TYPE_CHECKING:
    from evaluator.dataset import Case
    from evaluator.engine.http import ChatClient
    from evaluator.engine.metrics import MetricFactory, MetricOutcome
    from evaluator.suite import MetricSpec, Suite

SCORING_MODULES = ("evaluator.engine.metrics", "evaluator.engine.judge", "evaluator.engine.testcase")

_lock = threading.Lock()
_imported: concurrent.futures.Future[None] | None = None


def start_import() -> None:
    """Starts importing the scoring side (DeepEval) on a daemon thread, once per process; returns at once."""
    global _imported
    with _lock:
        if _imported is not None:
            return
        _imported = concurrent.futures.Future()
    threading.Thread(target=_import, args=(_imported,), name="import-deepeval", daemon=True).start()


def _import(done: concurrent.futures.Future[None]) -> None:
    try:
        for name in SCORING_MODULES:
            importlib.import_module(name)
    except BaseException as exc:  # the awaiting shard raises it, as an import at module level would have
        done.set_exception(exc)
    else:
        done.set_result(None)


async def imported() -> None:
    """Returns once the scoring side is imported (starting the import if nobody did); raises what the import
    raised."""
    start_import()
    assert _imported is not None
    await asyncio.wrap_future(_imported)


@dataclass(frozen=True)
class Scorer:
    """A shard's metrics ready to score: the factory (with the judge), the G-Eval steps and the fingerprints every
    record is stamped with (`scored_with`)."""

    factory: MetricFactory
    steps: dict[str, list[str]]
    fingerprints: dict[str, str]

    async def measure(self, specs: list[MetricSpec], case: Case, actual: str | None) -> list[MetricOutcome]:
        """`case`'s answer `actual` scored by fresh instances of `specs` (concurrently: one task per metric)."""
        from evaluator.engine.metrics import score
        from evaluator.engine.testcase import build_test_case

        test_case = build_test_case(case, actual)
        factory = self.factory
        return await asyncio.gather(*(score(factory.build(spec), spec, test_case) for spec in specs))


async def prepare_scorer(
    suite: Suite, judge_client: ChatClient | None, steps_dir: Path, *, run_id: str, suite_hash: str
) -> Scorer:
    """The shard's scorer: DeepEval imported, the judge built on `judge_client` (none: metrics that need no judge
    only), and every criteria-only G-Eval's steps obtained once per run (see `MetricFactory.prepare`)."""
    await imported()
    from evaluator.engine.judge import ChatJudge, NoJudge
    from evaluator.engine.metrics import MetricFactory

    judge = ChatJudge(judge_client, suite.judge) if judge_client and suite.judge else NoJudge()
    factory = MetricFactory(suite.metrics, judge)
    concurrency = suite.concurrency
    wait_s = 300.0 + len(factory.criteria_only()) * concurrency.request_timeout_s * concurrency.max_attempts
    steps = await factory.prepare(steps_dir, run_id=run_id, suite_hash=suite_hash, wait_s=wait_s)
    return Scorer(factory, steps, metric_fingerprints(suite, steps))
