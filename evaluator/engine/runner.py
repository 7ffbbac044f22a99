"""One shard, one asyncio loop: resume from disk, evaluate the rest concurrently, write as we go.

A shard's work is a list of units, each a case answered by one variant (a named target). The loop keeps about
twice as many units in flight as the endpoints accept calls, so the adaptive limiters, not the scheduler, decide
the pace: the evaluator runs as fast as the server answers and no faster. Variants on one server share its pool
and adaptive limit (and the judge's, when the judge lives there too); each still sends its own key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluator.contract import (
    Call,
    Counts,
    EndpointSummary,
    ErrorInfo,
    JudgeInfo,
    Manifest,
    MetricResult,
    ProfileInfo,
    ResultRecord,
    TargetInfo,
    unit_key,
)
from evaluator.dataset import Case
from evaluator.engine.http import CallError, CallRecord, ChatClient, RetryPolicy, current_calls, redact_url
from evaluator.engine.judge import ChatJudge, NoJudge
from evaluator.engine.limiter import AdaptiveLimiter
from evaluator.engine.metrics import MetricFactory, score
from evaluator.engine.testcase import build_test_case
from evaluator.errors import BadShardError, InfrastructureError
from evaluator.results import (
    MANIFEST_FILE,
    RESULTS_FILE,
    ResultWriter,
    file_sha256,
    read_manifest,
    read_results,
    shard_dir,
    truncate_torn_tail,
    write_manifest,
)
from evaluator.selection import Unit
from evaluator.sharding import ShardPlan
from evaluator.suite import Concurrency, Endpoint, Judge, LoadedSuite, Target

log = logging.getLogger("evaluator.run")


@dataclass(frozen=True)
class RunIdentity:
    """What ties the shards of one run together."""

    run_id: str
    commit: str
    suite_hash: str
    suite_name: str


@dataclass
class ShardOutcome:
    index: int
    assigned: int
    resumed: int
    evaluated: int
    passed: int
    failed: int
    errored: int
    wall_time_s: float
    endpoint_stats: dict[str, EndpointSummary] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errored / self.assigned if self.assigned else 0.0


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _sampling(endpoint: Endpoint) -> dict[str, Any]:
    """What shapes an endpoint's answers (its model and sampling settings), never its key."""
    return {
        "model": endpoint.model,
        "endpoint": redact_url(endpoint.base_url),
        "max_tokens": endpoint.max_tokens,
        "temperature": endpoint.temperature,
        "seed": endpoint.seed,
        "extra_body": dict(endpoint.extra_body),
    }


def target_info(target: Target) -> TargetInfo:
    """A variant's target as the manifest records it."""
    return TargetInfo(**_sampling(target), system_prompt=target.system_prompt, prompt_template=target.prompt_template)


def judge_info(judge: Judge) -> JudgeInfo:
    return JudgeInfo(**_sampling(judge), structured_output=judge.structured_output)


def retry_policy(concurrency: Concurrency) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=concurrency.max_attempts,
        backoff_base_s=concurrency.backoff_base_s,
        backoff_max_s=concurrency.backoff_max_s,
        timeout_s=concurrency.request_timeout_s,
    )


def new_client(endpoint: Endpoint, concurrency: Concurrency) -> ChatClient:
    """A keep-alive client with its own adaptive limit, for one server (share it across endpoints there)."""
    limiter = AdaptiveLimiter(concurrency.max_calls_per_endpoint, concurrency.min_calls_per_endpoint)
    return ChatClient(endpoint.base_url, api_key=endpoint.api_key(), limiter=limiter, retry=retry_policy(concurrency))


class ShardRunner:
    """Evaluates the units of one shard plan into `out/shard-NNNNN/`."""

    def __init__(
        self,
        loaded: LoadedSuite,
        plan: ShardPlan[Unit],
        identity: RunIdentity,
        out: Path,
        profile: ProfileInfo | None = None,
        steps_dir: Path | None = None,
        variants: list[str] | None = None,
    ) -> None:
        self.loaded = loaded
        self.suite = loaded.suite
        self.plan = plan
        self.identity = identity
        self.out = out
        self.steps_dir = steps_dir or out  # where the run's G-Eval steps live: the run's results folder
        self.profile = profile
        everything = self.suite.targets()  # the run's variants (all, or the one of a fan-out's branch), in order
        self.targets = {name: everything[name] for name in (variants or list(everything))}
        self.folder = shard_dir(out, plan.index)
        self.results_path = self.folder / RESULTS_FILE
        self.manifest_path = self.folder / MANIFEST_FILE
        self.g_eval_steps: dict[str, list[str]] = {}

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

    # --- run ----------------------------------------------------------------------------------------------
    async def run(self, *, retry_errors: bool = True) -> ShardOutcome:
        started_wall = time.monotonic()
        started_at = now_iso()
        if len(self.targets) > 1:
            log.info("%s", self.plan.describe("units (case x variant)", "product positions"))
        else:
            log.info("%s", self.plan.describe())
        latest = self._finished_on_disk()
        done = {key for key, r in latest.items() if not (retry_errors and r.error is not None)}
        todo = [u for u in self.plan.units if u.key not in done]
        if done:
            log.info(
                "shard %d: resuming, %d units already finished, %d to go",
                self.plan.index,
                len(done),
                len(todo),
            )
        if todo or not self.manifest_path.exists():
            self.manifest_path.unlink(missing_ok=True)  # the manifest must never vouch for a file still growing
        stats: dict[str, EndpointSummary] = {}
        if not todo and (manifest := read_manifest(self.manifest_path).manifest) is not None:
            log.info("shard %d: already complete", self.plan.index)
            counts = manifest.counts
            return ShardOutcome(
                self.plan.index, counts.cases, len(done), 0, counts.passed, counts.failed, counts.errored, 0.0
            )
        stats = await self._evaluate(todo, latest)
        final = [latest[u.key] for u in self.plan.units if u.key in latest]
        errored = sum(1 for r in final if r.error is not None)
        passed = sum(1 for r in final if r.success and r.error is None)
        outcome = ShardOutcome(
            index=self.plan.index,
            assigned=len(self.plan.units),
            resumed=len(done),
            evaluated=len(todo),
            passed=passed,
            failed=len(final) - passed - errored,
            errored=errored,
            wall_time_s=time.monotonic() - started_wall,
            endpoint_stats=stats,
        )
        self._write_manifest(outcome, started_at)
        log.info(
            "shard %d: done in %.1fs: %d passed, %d failed, %d errored",
            self.plan.index, outcome.wall_time_s, passed, outcome.failed, errored,
        )  # fmt: skip
        budget = self.suite.gate.error_budget
        if outcome.errored and outcome.error_rate > budget:
            raise InfrastructureError(
                f"shard {self.plan.index}: {errored} of {outcome.assigned} cases errored "
                f"({outcome.error_rate:.1%} > error budget {budget:.1%}); re-run the shard to retry them"
            )
        return outcome

    def _write_manifest(self, outcome: ShardOutcome, started_at: str) -> None:
        if not self.results_path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self.results_path.touch()
        manifest = Manifest(
            run_id=self.identity.run_id,
            suite_hash=self.identity.suite_hash,
            suite_name=self.identity.suite_name,
            commit=self.identity.commit,
            shard_index=self.plan.index,
            total_shards=self.plan.total,
            sharding=self.plan.mode,
            gate=self.suite.gate,
            suite_path=str(self.loaded.path),
            max_calls_per_endpoint=self.suite.concurrency.max_calls_per_endpoint,
            case_ids=[u.case.id for u in self.plan.units],
            case_variants=[u.variant for u in self.plan.units],
            targets={name: target_info(t) if t is not None else None for name, t in self.targets.items()},
            judge=judge_info(self.suite.judge) if self.suite.judge is not None else None,
            g_eval_steps=self.g_eval_steps,
            profile=self.profile,
            compare=self.suite.compare,
            counts=Counts(
                cases=outcome.assigned, passed=outcome.passed, failed=outcome.failed, errored=outcome.errored
            ),
            results_sha256=file_sha256(self.results_path),
            started_at=started_at,
            finished_at=now_iso(),
            wall_time_s=round(outcome.wall_time_s, 3),
            endpoints=outcome.endpoint_stats,
        )
        write_manifest(self.manifest_path, manifest)

    async def _evaluate(self, todo: list[Unit], latest: dict[str, ResultRecord]) -> dict[str, EndpointSummary]:
        concurrency = self.suite.concurrency
        # One pool and one adaptive limit per server (base_url); one client, with its own key, per endpoint.
        clients: dict[str, ChatClient] = {}

        def client_for(endpoint: Endpoint | None) -> ChatClient | None:
            if endpoint is None:
                return None
            if endpoint.base_url in clients:
                return clients[endpoint.base_url].for_key(endpoint.api_key())
            clients[endpoint.base_url] = new_client(endpoint, concurrency)
            return clients[endpoint.base_url]

        variants_in_use = {u.variant for u in todo}
        targets = {
            name: (target, client_for(target))
            for name, target in self.targets.items()
            if name in variants_in_use and target is not None
        }
        judge_client = client_for(self.suite.judge)
        for client in clients.values():
            await client.__aenter__()
        try:
            judge = ChatJudge(judge_client, self.suite.judge) if judge_client and self.suite.judge else NoJudge()
            factory = MetricFactory(self.suite.metrics, judge)
            wait_s = 300.0 + len(factory.criteria_only()) * concurrency.request_timeout_s * concurrency.max_attempts
            self.g_eval_steps = await factory.prepare(
                self.steps_dir, run_id=self.identity.run_id, suite_hash=self.identity.suite_hash, wait_s=wait_s
            )
            in_flight = concurrency.max_cases_in_flight or 2 * sum(c.limiter.maximum for c in clients.values())
            progress = _Progress(self.plan.index, len(todo))
            pending = iter(todo)
            with ResultWriter(self.results_path) as writer:

                async def worker() -> None:
                    for unit in pending:
                        record = await self._evaluate_case(unit, targets.get(unit.variant), factory)
                        writer.write(record)
                        latest[unit.key] = record
                        progress.tick(record, clients)

                if todo:
                    await asyncio.gather(*(worker() for _ in range(max(1, min(in_flight, len(todo))))))
        finally:
            for client in clients.values():
                await client.__aexit__()
        return {
            redact_url(url): EndpointSummary(
                calls=c.stats.calls,
                attempts=c.stats.attempts,
                by_status=dict(c.stats.by_status),
                peak_in_flight=c.limiter.peak_in_flight,
                final_limit=round(c.limiter.limit, 1),
                limit_decreases=c.limiter.decreases,
                limit_changes=list(c.limiter.changes),
            )
            for url, c in clients.items()
        }

    async def _evaluate_case(
        self, unit: Unit, target: tuple[Target, ChatClient | None] | None, factory: MetricFactory
    ) -> ResultRecord:
        case = unit.case
        calls: list[CallRecord] = []
        token = current_calls.set(calls)
        started_at, started = now_iso(), time.perf_counter()
        error: ErrorInfo | None = None
        metrics: dict[str, MetricResult] = {}
        actual = case.actual_output
        try:
            if actual is None:
                client = target[1] if target is not None else None
                if target is None or client is None:
                    error = ErrorInfo(kind="config", message="case has no actual_output and the suite no target")
                else:
                    settings = target[0]
                    try:
                        actual = (await client.chat("target", _target_body(settings, case))).text
                    except CallError as exc:
                        error = ErrorInfo(kind=exc.kind, message=exc.message)
            if error is None and actual is not None:
                test_case = build_test_case(case, actual)
                specs = self.suite.metrics
                outcomes = await asyncio.gather(*(score(factory.build(spec), spec, test_case) for spec in specs))
                for spec, outcome in zip(specs, outcomes, strict=True):
                    metrics[spec.key] = MetricResult(
                        score=outcome.score,
                        threshold=outcome.threshold,
                        success=outcome.success,
                        reason=None if outcome.reason is None else str(outcome.reason),
                        error=outcome.error,
                        scoring=outcome.scoring,
                    )
                    if outcome.error and error is None:
                        error = ErrorInfo(kind=outcome.error_kind or "metric", message=f"{spec.key}: {outcome.error}")
        finally:
            current_calls.reset(token)
        return ResultRecord(
            run_id=self.identity.run_id,
            suite_hash=self.identity.suite_hash,
            commit=self.identity.commit,
            shard_index=self.plan.index,
            total_shards=self.plan.total,
            variant=unit.variant,
            case_id=case.id,
            case_index=case.index,
            input=case.input,
            expected_output=case.expected_output,
            actual_output=actual,
            metrics=metrics,
            calls=[Call(**c.as_dict()) for c in calls],
            success=error is None and all(m.success for m in metrics.values()),
            error=error,
            duration_s=round(time.perf_counter() - started, 6),
            started_at=started_at,
            finished_at=now_iso(),
            metadata=case.metadata,
        )


def record_key(record: ResultRecord) -> str:
    """The unit a record answers (see `contract.unit_key`)."""
    return unit_key(record.variant, record.case_id)


def _target_body(target: Target, case: Case) -> dict[str, Any]:
    prompt = target.prompt_template.format(
        input=case.input,
        context="\n".join(case.context or ()),
        retrieval_context="\n".join(case.retrieval_context or ()),
    )
    messages = [{"role": "user", "content": prompt}]
    if target.system_prompt:
        messages.insert(0, {"role": "system", "content": target.system_prompt})
    body: dict[str, Any] = {
        "model": target.model,
        "messages": messages,
        "max_tokens": target.max_tokens,
        "temperature": target.temperature,
        **target.extra_body,
    }
    if target.seed is not None:
        body["seed"] = target.seed
    return body


class _Progress:
    """A log line every ~10% or 15 s: done, rate, errors, current limits."""

    def __init__(self, index: int, total: int) -> None:
        self.index, self.total = index, total
        self.done = self.errors = 0
        self.started = self.last = time.monotonic()
        self.step = max(1, total // 10)

    def tick(self, record: ResultRecord, clients: dict[str, ChatClient]) -> None:
        self.done += 1
        self.errors += 1 if record.error is not None else 0
        now = time.monotonic()
        if self.done % self.step and now - self.last < 15 and self.done != self.total:
            return
        self.last = now
        rate = self.done / max(now - self.started, 1e-9)
        limits = ", ".join(
            f"{c.limiter.limit:.0f}" + (f" paced at {c.limiter.rate:.1f}/s" if c.limiter.rate else "")
            for c in clients.values()
        )
        log.info(
            "shard %d: %d/%d units, %.1f units/s, %d errored, concurrency limit %s",
            self.index, self.done, self.total, rate, self.errors, limits,
        )  # fmt: skip


def endpoint_label(endpoint: Endpoint) -> str:
    return f"{endpoint.model} at {redact_url(endpoint.base_url)}"
