"""What scores a shard's answers (DeepEval's metrics, the judge, the G-Eval steps), made ready beside the first calls.

Importing DeepEval costs a process about 1-1.5 s of CPU (pydantic building OpenAI's and DeepEval's models): more
than five rounds of calls to a 200 ms server, paid by every pod and every `run --workers` worker before it could
ask anything. Nothing a target call needs comes from DeepEval, so the engine's call side (runner, unit, clients,
HTTP) never imports it at module level: `start_import` imports the scoring side on a thread, a fresh shard asks
its targets at once, and the answers that come back before the scorer is ready wait for it
(`ShardRunner._evaluate` parks them) and are scored as soon as it is.

The thread only imports; every DeepEval object is built on the event loop's thread once `imported()` returned. It
starts when the first shard's scorer is asked for (the calls' side is imported by then, not in parallel with it).
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import importlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evaluator.dataset import Case
    from evaluator.engine.http import ChatClient
    from evaluator.engine.metrics import MetricFactory, MetricOutcome
    from evaluator.suite import MetricSpec, Suite

SCORING_MODULES = ("evaluator.engine.metrics", "evaluator.engine.judge", "evaluator.engine.testcase")
# Every module of this package the import above runs, and DeepEval itself: what no other thread may start importing
# while it runs (see `_guarded_import`).
_GUARDED = frozenset({*SCORING_MODULES, "evaluator.engine.custom", "evaluator.engine.threaded"})
_GUARDED_SHORT = frozenset(name.rsplit(".", 1)[1] for name in _GUARDED)

_lock = threading.Lock()
_imported: concurrent.futures.Future[None] | None = None
_importer: int | None = None  # the importing thread's ident while it runs
_real_import = builtins.__import__


def start_import() -> None:
    """Starts importing the scoring side (DeepEval) on a daemon thread, once per process; returns at once.

    Call it once the calls' side is imported (the engine does: `imported()` from the shard's scorer task), so the
    two threads never import the same modules at once: two threads entering DeepEval's import cycles at different
    modules can each be handed the other's half-initialized module (CPython breaks the deadlock that way), and a
    name is then missing. While the thread imports, any other thread's import of DeepEval or of the scoring modules
    waits for it first (`_guarded_import`)."""
    global _imported
    with _lock:
        if _imported is not None:
            return
        _imported = concurrent.futures.Future()
    thread = threading.Thread(target=_import, args=(_imported,), name="import-deepeval", daemon=True)
    builtins.__import__ = _guarded_import
    thread.start()


def _import(done: concurrent.futures.Future[None]) -> None:
    global _importer
    _importer = threading.get_ident()
    try:
        for name in SCORING_MODULES:
            importlib.import_module(name)
    except BaseException as exc:  # the awaiting shard raises it, as an import at module level would have
        done.set_exception(exc)
    else:
        done.set_result(None)
    finally:
        if builtins.__import__ is _guarded_import:
            builtins.__import__ = _real_import
        _importer = None


def _guarded_import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> Any:  # fmt: skip
    """`__import__` while the scoring side imports: another thread's import of DeepEval or of a scoring module
    waits for it to finish (before taking any module lock, so the two never interleave)."""
    if level == 0 and _imported is not None and threading.get_ident() != _importer and _guarded(name, fromlist):
        concurrent.futures.wait([_imported])
    return _real_import(name, globals, locals, fromlist, level)


def _guarded(name: str, fromlist: Any) -> bool:
    if name == "deepeval" or name.startswith("deepeval.") or name in _GUARDED:
        return True
    return name == "evaluator.engine" and bool(fromlist) and not _GUARDED_SHORT.isdisjoint(fromlist)


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
    from evaluator.identity import metric_fingerprints

    judge = ChatJudge(judge_client, suite.judge) if judge_client and suite.judge else NoJudge()
    factory = MetricFactory(suite.metrics, judge)
    concurrency = suite.concurrency
    wait_s = 300.0 + len(factory.criteria_only()) * concurrency.request_timeout_s * concurrency.max_attempts
    steps = await factory.prepare(steps_dir, run_id=run_id, suite_hash=suite_hash, wait_s=wait_s)
    return Scorer(factory, steps, metric_fingerprints(suite, steps))
