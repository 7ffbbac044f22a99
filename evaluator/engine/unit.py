"""One unit of a shard's work, from the target's answer to the record written for it.

Apart from the runner (which decides what needs work, schedules it and writes it down) because this is the path
every case takes, once per unit: asking the target, scoring the metrics that do not carry over, and the record's
fields. Keeping it alone keeps its cost per call in view.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from evaluator.contract import Call, ErrorInfo, MetricResult, ResultRecord
from evaluator.dataset import Case
from evaluator.engine.http import CallError, CallRecord, ChatClient, current_calls
from evaluator.engine.metrics import MetricFactory, score
from evaluator.engine.outcome import RunIdentity, now_iso
from evaluator.engine.testcase import build_test_case
from evaluator.selection import Unit
from evaluator.suite import MetricSpec, Target


@dataclass(frozen=True)
class UnitEvaluator:
    """Evaluates units of shard `shard_index` with the suite's `specs`, scored as `fingerprints` say."""

    identity: RunIdentity
    shard_index: int
    total_shards: int
    specs: list[MetricSpec]
    fingerprints: dict[str, str]
    factory: MetricFactory

    async def __call__(
        self, unit: Unit, previous: ResultRecord | None, target: tuple[Target, ChatClient | None] | None
    ) -> ResultRecord:
        """The unit's new record; `previous` is its latest record (None: never evaluated), whose answer and
        still-valid metric results carry over."""
        case = unit.case
        calls: list[CallRecord] = []
        token = current_calls.set(calls)
        started_at, started = now_iso(), time.perf_counter()
        error: ErrorInfo | None = None
        metrics: dict[str, MetricResult] = {}
        actual = case.actual_output
        if actual is None and previous is not None:
            actual = previous.actual_output  # the recorded answer: re-scoring never asks the target again
        continues = previous is not None and previous.actual_output is not None and previous.actual_output == actual
        try:
            if actual is None:
                client = target[1] if target is not None else None
                if target is None or client is None:
                    error = ErrorInfo(kind="config", message="case has no actual_output and the suite no target")
                else:
                    settings = target[0]
                    try:
                        actual = (await client.chat("target", target_body(settings, case))).text
                    except CallError as exc:
                        error = ErrorInfo(kind=exc.kind, message=exc.message)
            if error is None and actual is not None:
                test_case = build_test_case(case, actual)
                specs = self.specs
                carried = carried_over(previous, self.fingerprints) if continues else {}
                fresh = [spec for spec in specs if spec.key not in carried]
                factory = self.factory
                outcomes = await asyncio.gather(*(score(factory.build(spec), spec, test_case) for spec in fresh))
                scored = dict(zip((spec.key for spec in fresh), outcomes, strict=True))
                for spec in specs:
                    if spec.key in carried:
                        metrics[spec.key] = carried[spec.key]
                        continue
                    outcome = scored[spec.key]
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
        earlier = previous if continues and previous is not None else None
        return ResultRecord(
            run_id=self.identity.run_id,
            suite_hash=self.identity.suite_hash,
            commit=self.identity.commit,
            shard_index=self.shard_index,
            total_shards=self.total_shards,
            variant=unit.variant,
            case_id=case.id,
            case_index=case.index,
            input=case.input,
            expected_output=case.expected_output,
            actual_output=actual,
            metrics=metrics,
            calls=[*(earlier.calls if earlier is not None else []), *(Call(**c.as_dict()) for c in calls)],
            success=error is None and all(m.success for m in metrics.values()),
            error=error,
            duration_s=round(time.perf_counter() - started + (earlier.duration_s if earlier is not None else 0.0), 6),
            started_at=earlier.started_at if earlier is not None else started_at,
            finished_at=now_iso(),
            scored_with=dict(self.fingerprints),
            rescored=previous is not None and previous.error is None,
            metadata=case.metadata,
        )


def carried_over(previous: ResultRecord | None, fingerprints: dict[str, str]) -> dict[str, MetricResult]:
    """The previous record's metric results that still hold: scored with today's fingerprint, without error."""
    if previous is None:
        return {}
    return {
        key: result
        for key, result in previous.metrics.items()
        if key in fingerprints and previous.scored_with.get(key) == fingerprints[key] and result.error is None
    }


def target_body(target: Target, case: Case) -> dict[str, Any]:
    """The chat request that asks `target` to answer `case`."""
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
