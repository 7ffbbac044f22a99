"""One shard, one asyncio loop: resume from disk, evaluate the rest concurrently, write as we go.

A shard's work is a list of units, each a case answered by one variant (a named target). The loop keeps about
twice as many units in flight as the endpoints accept calls, so the adaptive limiters, not the scheduler, decide
the pace: the evaluator runs as fast as the server answers and no faster. Variants on one server share its pool
and adaptive limit (and the judge's, when the judge lives there too); each still sends its own key.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from evaluator.contract import (
    EndpointSummary,
    Manifest,
    ModelProvenance,
    ProfileInfo,
    Provenance,
    ResultRecord,
    StopInfo,
    unit_key,
)
from evaluator.engine.cache import CACHE_FILE, ResponseCache
from evaluator.engine.clients import ShardClients
from evaluator.engine.limiter import AdaptiveLimiter
from evaluator.engine.outcome import RunIdentity, ShardFacts, ShardOutcome, count_outcome, now_iso
from evaluator.engine.scorer import Scorer, prepare_scorer
from evaluator.engine.shard_progress import ShardProgress
from evaluator.engine.unit import Answered, UnitEvaluator
from evaluator.errors import BadShardError, InfrastructureError
from evaluator.provenance import local_provenance, served_model
from evaluator.results import (
    MANIFEST_FILE,
    RESULTS_FILE,
    ResultWriter,
    read_manifest,
    read_results,
    shard_dir,
    truncate_torn_tail,
    write_manifest,
)
from evaluator.selection import Unit
from evaluator.sharding import ShardPlan
from evaluator.stopping import Cancelled, Stop
from evaluator.suite import Endpoint, LoadedSuite

log = logging.getLogger("evaluator.run")
T = TypeVar("T")
PARKED_PER_SLOT = 8  # answers parked per coroutine while the scorer is not ready (a bound on memory)


class ShardRunner:
    """Evaluates the units of one shard plan into `out/shard-NNNNN/`.

    A unit needs work when it has no result yet, its result is an infrastructure error (with `retry_errors`), or
    its result was scored otherwise than the suite now scores (its metrics' fingerprints differ: a metric added,
    removed or changed, a threshold, the judge, G-Eval's steps, DeepEval's version). Re-scoring keeps the
    recorded answer, carries over every metric whose fingerprint is unchanged and scores the rest; the judge
    requests it repeats are answered from the shard's response cache. The new record is appended with
    `rescored: true` and supersedes the old one (the file stays append-only: a kill loses nothing).
    """

    def __init__(
        self,
        loaded: LoadedSuite,
        plan: ShardPlan[Unit],
        identity: RunIdentity,
        out: Path,
        profile: ProfileInfo | None = None,
        steps_dir: Path | None = None,
        variants: list[str] | None = None,
        *,
        stop: Stop | None = None,
        use_cache: bool = True,
        on_progress: Callable[[int, int], None] | None = None,
        on_drained: Callable[[], None] | None = None,
        limiters: dict[str, AdaptiveLimiter] | None = None,
    ) -> None:
        self.loaded = loaded
        self.suite = loaded.suite
        self.plan = plan
        self.identity = identity
        self.out = out
        self.steps_dir = steps_dir or out  # where the run's G-Eval steps live: the run's results folder
        everything = self.suite.targets()  # the run's variants (all, or the one of a fan-out's branch), in order
        self.targets = {name: everything[name] for name in (variants or list(everything))}
        self.folder = shard_dir(out, plan.index)
        self.results_path = self.folder / RESULTS_FILE
        self.manifest_path = self.folder / MANIFEST_FILE
        self.g_eval_steps: dict[str, list[str]] = {}
        self.stop = stop or Stop()
        self.cache = ResponseCache(self.folder / CACHE_FILE) if use_cache else None
        self.on_progress = on_progress
        self.on_drained = on_drained  # told once, when no unit is left to start (the last ones may be in flight)
        self.limiters = limiters  # one limit per server for every shard of a worker process (None: this shard's)
        self.fingerprints: dict[str, str] = {}
        self.provenance: Provenance | None = None
        self.facts = ShardFacts(identity, plan, loaded, dict(self.targets), profile)

    # --- resume -------------------------------------------------------------------------------------------
    def _finished_on_disk(self) -> dict[str, ResultRecord]:
        """Last record per case from a previous attempt; refuses a folder that belongs to another run."""
        on_disk = read_results(self.results_path)
        corrupt = [p for p in on_disk.problems if p.kind != "truncated_line"]
        if corrupt:
            first = corrupt[0]
            raise BadShardError(
                f"{self.results_path}:{first.line}: {first.message}; the shard cannot resume safely "
                f"(move the file away to start this shard over)"
            )
        if on_disk.torn_tail:
            log.warning("%s: cutting a torn last line left by a killed run", self.results_path)
            truncate_torn_tail(self.results_path, on_disk.valid_bytes)
        assigned = {u.key for u in self.plan.units}
        latest: dict[str, ResultRecord] = {}
        for record, line in zip(on_disk.records, on_disk.lines, strict=True):
            for key, found, expected in (
                ("run_id", record.run_id, self.identity.run_id),
                ("suite_hash", record.suite_hash, self.identity.suite_hash),
                ("total_shards", record.total_shards, self.plan.total),
            ):
                if found != expected:
                    raise BadShardError(
                        f"{self.results_path}:{line}: field '{key}' is {found!r}, this run has "
                        f"{expected!r}; use a fresh --out folder for a new run"
                    )
            key = record_key(record)
            if key not in assigned:
                raise BadShardError(
                    f"{self.results_path}:{line}: case {record.case_id!r} (variant {record.variant!r}) is not "
                    f"assigned to shard {self.plan.index} (were the sharding mode, the profile or the variants "
                    f"changed?)"
                )
            latest[key] = record
        return latest

    def _work(self, latest: dict[str, ResultRecord], retry_errors: bool) -> list[tuple[Unit, ResultRecord | None]]:
        """The units that need work, each with its latest record (None: never evaluated)."""
        work: list[tuple[Unit, ResultRecord | None]] = []
        for unit in self.plan.units:
            record = latest.get(unit.key)
            if record is None:
                work.append((unit, None))
            elif record.error is not None:
                if retry_errors:
                    work.append((unit, record))
            elif record.scored_with != self.fingerprints:
                work.append((unit, record))
        return work

    # --- run ----------------------------------------------------------------------------------------------
    async def run(self, *, retry_errors: bool = True) -> ShardOutcome:
        """Evaluates what needs work; raises `Cancelled` (after writing a `cancelled` manifest) on a stop."""
        try:
            return await self._run(retry_errors)
        finally:
            self._drained()

    def _drained(self) -> None:
        if self.on_drained is not None:
            drained, self.on_drained = self.on_drained, None
            drained()

    def _units(self, work: list[tuple[Unit, ResultRecord | None]]) -> Iterator[tuple[Unit, ResultRecord | None]]:
        """The work, one unit at a time to whichever coroutine is free; says when the last one was taken."""
        yield from work
        self._drained()

    async def _run(self, retry_errors: bool) -> ShardOutcome:
        started_wall = time.monotonic()
        started_at = now_iso()
        if len(self.targets) > 1:
            log.info("%s", self.plan.describe("units (case x variant)", "product positions"))
        else:
            log.info("%s", self.plan.describe())
        latest = self._finished_on_disk()
        previous = read_manifest(self.manifest_path).manifest
        loop = asyncio.get_running_loop()
        stopped, hurry = asyncio.Event(), asyncio.Event()

        def wake() -> None:  # from a signal handler: hand over to the loop
            loop.call_soon_threadsafe(stopped.set)
            if self.stop.hurry:
                loop.call_soon_threadsafe(hurry.set)

        unlisten = self.stop.listen(wake)
        if self.stop.requested:
            stopped.set()
        if self.cache is not None:
            self.cache.open()
        try:
            endpoints: list[Endpoint] = [t for t in self.targets.values() if t is not None]
            endpoints += [self.suite.judge] if self.suite.judge is not None else []
            async with ShardClients(self.suite.concurrency, self.cache, endpoints, self.limiters) as clients:
                scorer = asyncio.ensure_future(self._scorer(clients))
                try:
                    if latest or not self.plan.units:  # what needs work depends on how the suite now scores
                        ready = await _unless_stopped(scorer, stopped)
                        if ready is None:  # stopped while the G-Eval steps were written or awaited: nothing was done
                            return self._cancelled(latest, retry_errors, started_wall, started_at, {}, 0, previous)
                        work = self._work(latest, retry_errors)
                        if not work and previous is not None and previous.state == "complete":
                            return self._already_complete(previous)
                    else:  # a fresh shard: every unit needs work, so its first calls need not wait for the scorer
                        work = [(unit, None) for unit in self.plan.units]
                    if stopped.is_set():  # before the first unit: what is on disk stands as it is
                        return self._cancelled(latest, retry_errors, started_wall, started_at, {}, 0, previous)
                    self.manifest_path.unlink(missing_ok=True)  # it must never vouch for a file still growing
                    fresh = sum(1 for _, record in work if record is None)
                    if len(work) > fresh:
                        log.info(
                            "shard %d: resuming: %d units finished, %d to evaluate, %d to retry or re-score",
                            self.plan.index, len(self.plan.units) - len(work), fresh, len(work) - fresh,
                        )  # fmt: skip
                    self.provenance = await self._provenance(clients, {u.variant for u, _ in work})
                    abandoned = await self._evaluate(work, latest, clients, scorer, stopped, hurry)
                    stats = clients.summary()
                finally:
                    scorer.cancel()  # no-op once done; its outcome was read where it mattered
                    await asyncio.gather(scorer, return_exceptions=True)  # a cancel of this shard still propagates
        finally:
            unlisten()
            if self.cache is not None:
                self.cache.close()
        if self.stop.requested and self._work(latest, retry_errors):
            return self._cancelled(latest, retry_errors, started_wall, started_at, stats, abandoned)
        outcome = count_outcome(self.plan, latest, len(self.plan.units) - len(work), len(work), started_wall, stats)
        self._write_manifest(outcome, started_at)
        log.info(
            "shard %d: done in %.1fs: %d passed, %d failed, %d errored",
            self.plan.index, outcome.wall_time_s, outcome.passed, outcome.failed, outcome.errored,
        )  # fmt: skip
        budget = self.suite.gate.error_budget
        if outcome.errored and outcome.error_rate > budget:
            raise InfrastructureError(
                f"shard {self.plan.index}: {outcome.errored} of {outcome.assigned} cases errored "
                f"({outcome.error_rate:.1%} > error budget {budget:.1%}); re-run the shard to retry them"
            )
        return outcome

    async def _scorer(self, clients: ShardClients) -> Scorer:
        """The shard's scorer (engine/scorer.py); its G-Eval steps and fingerprints are the shard's from then on."""
        judge_client = clients.get(self.suite.judge) if self.suite.judge is not None else None
        scorer = await prepare_scorer(
            self.suite, judge_client, self.steps_dir, run_id=self.identity.run_id, suite_hash=self.identity.suite_hash
        )
        self.g_eval_steps, self.fingerprints = scorer.steps, scorer.fingerprints
        return scorer

    def _already_complete(self, manifest: Manifest) -> ShardOutcome:
        """Nothing to evaluate: the manifest stands, with the suite's current gate and comparison settings (they
        are no part of the results, so changing them re-runs nothing)."""
        log.info("shard %d: already complete", self.plan.index)
        settings = {"gate": self.suite.gate, "compare": self.suite.compare, "suite_path": str(self.loaded.path)}
        if any(getattr(manifest, name) != value for name, value in settings.items()):
            write_manifest(self.manifest_path, manifest.model_copy(update=settings))
        counts = manifest.counts
        done = len(self.plan.units)
        self._report_progress(done)
        return ShardOutcome(self.plan.index, counts.cases, done, 0, counts.passed, counts.failed, counts.errored, 0.0)

    def _cancelled(
        self, latest: dict[str, ResultRecord], retry_errors: bool, started_wall: float, started_at: str,
        stats: dict[str, EndpointSummary], abandoned: int, untouched: Manifest | None = None,
    ) -> ShardOutcome:  # fmt: skip
        """Writes what was done as a `cancelled` manifest and raises `Cancelled` with the resume line's counts;
        stopped before any change to the shard's files (`untouched`: the manifest found), that manifest stands.

        Done: the units that need no more work (stopped before the scoring could be fingerprinted, every unit
        with a result)."""
        if self.fingerprints:
            remaining = {u.key for u, _ in self._work(latest, retry_errors)}
        else:
            remaining = {u.key for u in self.plan.units if u.key not in latest}
        current = {u.key: latest[u.key] for u in self.plan.units if u.key in latest and u.key not in remaining}
        outcome = count_outcome(self.plan, current, len(current), 0, started_wall, stats)
        info = StopInfo(signal=self.stop.signal_name, grace_s=self.stop.grace_s, abandoned=abandoned)
        if untouched is None:
            self._write_manifest(outcome, started_at, stop=info)
        log.info(
            "shard %d: stopped by %s: %d of %d units done, %d abandoned in flight",
            self.plan.index, info.signal, len(current), outcome.assigned, abandoned,
        )  # fmt: skip
        raise Cancelled(
            self.stop, len(current), outcome.assigned, passed=outcome.passed, failed=outcome.failed,
            errored=outcome.errored,
        )  # fmt: skip

    def _write_manifest(self, outcome: ShardOutcome, started_at: str, stop: StopInfo | None = None) -> None:
        if not self.results_path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self.results_path.touch()
        manifest = self.facts.manifest(
            outcome, self.results_path, started_at=started_at, g_eval_steps=self.g_eval_steps,
            fingerprints=self.fingerprints, cache=self.cache, provenance=self.provenance, stop=stop,
        )  # fmt: skip
        write_manifest(self.manifest_path, manifest)

    async def _provenance(self, clients: ShardClients, variants: set[str]) -> Provenance:
        """The versions, the image, and each model in use as its server lists it (GET /models, once per model)."""
        asked: dict[tuple[str, str], asyncio.Task[ModelProvenance]] = {}

        def ask(endpoint: Endpoint) -> asyncio.Task[ModelProvenance]:
            where = (endpoint.base_url, endpoint.model)
            if where not in asked:
                client = clients.get(endpoint)
                assert client is not None
                asked[where] = asyncio.ensure_future(served_model(client, endpoint.model, timeout_s=5.0))
            return asked[where]

        targets = {name: ask(t) for name, t in self.targets.items() if t is not None and name in variants}
        judge = ask(self.suite.judge) if self.suite.judge is not None and self.suite.needs_judge else None
        await asyncio.gather(*asked.values())
        return local_provenance(
            {name: (targets[name].result() if name in targets else None) for name in self.targets},
            judge.result() if judge is not None else None,
        )

    def _report_progress(self, done: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, len(self.plan.units))

    async def _evaluate(
        self, work: list[tuple[Unit, ResultRecord | None]], latest: dict[str, ResultRecord], clients: ShardClients,
        scorer: asyncio.Future[Scorer], stopped: asyncio.Event, hurry: asyncio.Event,
    ) -> int:  # fmt: skip
        """Evaluates `work` until done or stopped; returns how many units in flight were abandoned.

        Each coroutine asks a unit's target, then scores the answer. An answer that comes back before the scorer is
        ready (DeepEval still importing, the G-Eval steps still being written) is parked, up to `PARKED_PER_SLOT`
        per coroutine, and the coroutine asks the next unit's target meanwhile, so the server is kept busy from
        the first call; parked answers are scored first once the scorer is ready. A stop abandons the parked
        answers at once (they are no more than target answers; a resume asks again) and gives the units being
        asked or scored the grace, so a stop takes no longer than before parking."""
        concurrency = self.suite.concurrency
        variants_in_use = {u.variant for u, _ in work}
        targets = {
            name: (target, clients.get(target))
            for name, target in self.targets.items()
            if name in variants_in_use and target is not None
        }
        in_flight = concurrency.max_cases_in_flight or 2 * clients.capacity()
        done_before = len(self.plan.units) - len(work)
        progress = ShardProgress(self.plan.index, len(work))
        evaluate_unit = UnitEvaluator(self.identity, self.plan.index, self.plan.total, self.suite.metrics)
        self._report_progress(done_before)
        pending = self._units(work)
        parked: collections.deque[Answered] = collections.deque()
        coroutines = max(1, min(in_flight, len(work)))
        park_limit = PARKED_PER_SLOT * coroutines
        running = 0
        with ResultWriter(self.results_path, lazily=True) as writer:  # scored or nothing: see the scorer's failure

            async def worker() -> None:
                nonlocal running
                while not stopped.is_set():  # a stop abandons the parked answers: a resume asks them again
                    if parked and scorer.done():
                        answered = parked.popleft()
                    else:
                        item = next(pending, None) if len(parked) < park_limit else None
                        if item is None:
                            if not parked:
                                return
                            await asyncio.wait({scorer, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                            continue
                        unit, previous = item
                        running += 1
                        try:
                            answered = await evaluate_unit.ask(unit, previous, targets.get(unit.variant))
                        finally:
                            running -= 1
                        if not scorer.done():
                            answered.park()
                            parked.append(answered)
                            continue
                    running += 1
                    try:
                        record = await evaluate_unit.finish(answered, scorer.result())  # raises the scorer's failure
                    finally:
                        running -= 1
                    writer.write(record)
                    latest[answered.unit.key] = record
                    progress.tick(record, clients.all())
                    self._report_progress(done_before + progress.done)

            if not work:
                return 0
            stop_wait: asyncio.Future[Any] = asyncio.ensure_future(stopped.wait())
            tasks = [asyncio.ensure_future(worker()) for _ in range(coroutines)]
            everything: asyncio.Future[Any] = asyncio.gather(*tasks)
            try:
                await asyncio.wait({everything, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                abandoned = 0
                if not everything.done():
                    abandoned = await self._wind_down(everything, lambda: running, hurry)
                elif not everything.cancelled():
                    everything.result()  # the scorer's failure, or a worker's exception (a bug): let it surface
                return abandoned + len(parked)
            finally:
                stop_wait.cancel()
                for task in tasks:  # one coroutine failed: the others stop before the writer and clients close
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _wind_down(
        self, everything: asyncio.Future[Any], running: Callable[[], int], hurry: asyncio.Event
    ) -> int:
        """A stop was requested: no unit starts; those in flight get the grace (a second signal ends it)."""
        grace = self.stop.grace_s
        log.info(
            "shard %d: %s received: starting no new unit; %d in flight get up to %gs to finish",
            self.plan.index, self.stop.signal_name, running(), grace,
        )  # fmt: skip
        hurry_wait = asyncio.ensure_future(hurry.wait())
        try:
            await asyncio.wait({everything, hurry_wait}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hurry_wait.cancel()
        if everything.done():
            if not everything.cancelled():
                everything.result()
            return 0
        abandoned = running()
        everything.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await everything
        return abandoned


async def _unless_stopped(work: Awaitable[T], stopped: asyncio.Event) -> T | None:
    """`work`'s result, or None (and `work` cancelled) when a stop comes first."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def record_key(record: ResultRecord) -> str:
    """The unit a record answers (see `contract.unit_key`)."""
    return unit_key(record.variant, record.case_id)
