"""One unit of a shard's work, from the target's answer to the record written for it.

Apart from the runner (which decides what needs work, schedules it and writes it down) because this is the path
every case takes, once per unit: asking the target, scoring the metrics that do not carry over, and the record's
fields. Keeping it alone keeps its cost per call in view.

Two steps, because asking needs no DeepEval and scoring does (engine/scorer.py): `ask` gets the target's answer,
`finish` scores it once the shard's scorer is ready; an answer that came back before it was waits in between.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from evaluator.contract import Call, ErrorInfo, MetricResult, ResultRecord
from evaluator.dataset import Case
from evaluator.engine.http import CallError, CallRecord, ChatClient, current_calls
from evaluator.engine.outcome import RunIdentity, now_iso
from evaluator.engine.scorer import Scorer
from evaluator.selection import Unit
from evaluator.suite import MetricSpec, Target


@dataclass
class Answered:
    """A unit between its target's answer (or the recorded one) and its scoring."""

    unit: Unit
    previous: ResultRecord | None
    actual: str | None
    continues: bool  # the previous record's answer stands: its calls, duration and valid metrics carry over
    error: ErrorInfo | None
    started_at: str
    started: float  # perf_counter when the unit started
    calls: list[CallRecord] = field(default_factory=list)
    waiting_since: float | None = None  # parked for the scorer since (perf_counter)
    waited_s: float = 0.0  # time parked: no part of the unit's own duration

    def park(self) -> None:
        self.waiting_since = time.perf_counter()

    def resume(self) -> None:
        if self.waiting_since is not None:
            self.waited_s += time.perf_counter() - self.waiting_since
            self.waiting_since = None


@dataclass(frozen=True)
class UnitEvaluator:
    """Evaluates units of shard `shard_index` with the suite's `specs`."""

    identity: RunIdentity
    shard_index: int
    total_shards: int
    specs: list[MetricSpec]

    async def ask(
        self, unit: Unit, previous: ResultRecord | None, target: tuple[Target, ChatClient | None] | None
    ) -> Answered:
        """The unit's answer: the case's own, the recorded one (`previous` is its latest record; re-scoring never
        asks the target again), or the target's."""
        case = unit.case
        answered = Answered(unit, previous, case.actual_output, False, None, now_iso(), time.perf_counter())
        if answered.actual is None and previous is not None:
            answered.actual = previous.actual_output
        answered.continues = (
            previous is not None and previous.actual_output is not None and previous.actual_output == answered.actual
        )
        if answered.actual is not None:
            return answered
        client = target[1] if target is not None else None
        if target is None or client is None:
            answered.error = ErrorInfo(kind="config", message="case has no actual_output and the suite no target")
            return answered
        token = current_calls.set(answered.calls)
        try:
            answered.actual = (await client.chat("target", target_body(target[0], case))).text
        except CallError as exc:
            answered.error = ErrorInfo(kind=exc.kind, message=exc.message)
        finally:
            current_calls.reset(token)
        return answered

    async def finish(self, answered: Answered, scorer: Scorer) -> ResultRecord:
        """The unit's new record: `answered` scored by `scorer` (the previous record's still-valid metric results
        carry over)."""
        answered.resume()
        unit, previous, actual, error = answered.unit, answered.previous, answered.actual, answered.error
        case = unit.case
        metrics: dict[str, MetricResult] = {}
        token = current_calls.set(answered.calls)
        try:
            if error is None and actual is not None:
                specs = self.specs
                carried = carried_over(previous, scorer.fingerprints) if answered.continues else {}
                fresh = [spec for spec in specs if spec.key not in carried]
                outcomes = await scorer.measure(fresh, case, actual)
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
        earlier = previous if answered.continues and previous is not None else None
        own_s = time.perf_counter() - answered.started - answered.waited_s
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
            calls=[*(earlier.calls if earlier is not None else []), *(Call(**c.as_dict()) for c in answered.calls)],
            success=error is None and all(m.success for m in metrics.values()),
            error=error,
            duration_s=round(own_s + (earlier.duration_s if earlier is not None else 0.0), 6),
            started_at=earlier.started_at if earlier is not None else answered.started_at,
            finished_at=now_iso(),
            scored_with=dict(scorer.fingerprints),
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
