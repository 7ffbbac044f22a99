"""What a shard's run comes to: its counts (`ShardOutcome`) and the manifest that vouches for its results file.

Apart from the runner because the manifest is the shard's contract with everything downstream (aggregation,
resume, the gate): what it records of the targets and the judge, and how a finished, an already complete and a
cancelled shard are counted, read in one place without the event loop around them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluator.contract import (
    CacheStats,
    Counts,
    EndpointSummary,
    JudgeInfo,
    Manifest,
    ProfileInfo,
    Provenance,
    ResultRecord,
    StopInfo,
    TargetInfo,
)
from evaluator.engine.cache import ResponseCache
from evaluator.engine.http import redact_url
from evaluator.provenance import local_provenance
from evaluator.results import file_sha256
from evaluator.selection import Unit
from evaluator.sharding import ShardPlan
from evaluator.suite import Endpoint, Judge, LoadedSuite, Target


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


def count_outcome(
    plan: ShardPlan[Unit], latest: dict[str, ResultRecord], resumed: int, evaluated: int, started_wall: float,
    stats: dict[str, EndpointSummary],
) -> ShardOutcome:  # fmt: skip
    """The shard's counts from the latest record of each of its units (`latest`)."""
    final = [latest[u.key] for u in plan.units if u.key in latest]
    errored = sum(1 for r in final if r.error is not None)
    passed = sum(1 for r in final if r.success and r.error is None)
    return ShardOutcome(
        index=plan.index,
        assigned=len(plan.units),
        resumed=resumed,
        evaluated=evaluated,
        passed=passed,
        failed=len(final) - passed - errored,
        errored=errored,
        wall_time_s=time.monotonic() - started_wall,
        endpoint_stats=stats,
    )


@dataclass(frozen=True)
class ShardFacts:
    """Everything a shard's manifest says beyond its outcome: who ran it, with what, how it was scored."""

    identity: RunIdentity
    plan: ShardPlan[Unit]
    loaded: LoadedSuite
    targets: dict[str, Target | None]
    profile: ProfileInfo | None

    def manifest(
        self, outcome: ShardOutcome, results_path: Path, *, started_at: str, g_eval_steps: dict[str, list[str]],
        fingerprints: dict[str, str], cache: ResponseCache | None, provenance: Provenance | None,
        stop: StopInfo | None = None,
    ) -> Manifest:  # fmt: skip
        """The manifest of the results file as it is now (`stop`: a cancelled shard's)."""
        suite = self.loaded.suite
        return Manifest(
            run_id=self.identity.run_id,
            suite_hash=self.identity.suite_hash,
            suite_name=self.identity.suite_name,
            commit=self.identity.commit,
            shard_index=self.plan.index,
            total_shards=self.plan.total,
            sharding=self.plan.mode,
            gate=suite.gate,
            suite_path=str(self.loaded.path),
            max_calls_per_endpoint=suite.concurrency.max_calls_per_endpoint,
            case_ids=[u.case.id for u in self.plan.units],
            case_variants=[u.variant for u in self.plan.units],
            targets={name: target_info(t) if t is not None else None for name, t in self.targets.items()},
            judge=judge_info(suite.judge) if suite.judge is not None else None,
            g_eval_steps=g_eval_steps,
            profile=self.profile,
            compare=suite.compare,
            counts=Counts(
                cases=outcome.assigned, passed=outcome.passed, failed=outcome.failed, errored=outcome.errored
            ),
            results_sha256=file_sha256(results_path),
            started_at=started_at,
            finished_at=now_iso(),
            wall_time_s=round(outcome.wall_time_s, 3),
            endpoints=outcome.endpoint_stats,
            state="complete" if stop is None else "cancelled",
            stop=stop,
            scoring=fingerprints,
            cache=CacheStats(
                enabled=cache is not None,
                hits=cache.hits if cache is not None else 0,
                stored=cache.stored if cache is not None else 0,
            ),
            provenance=provenance or local_provenance(),
        )
