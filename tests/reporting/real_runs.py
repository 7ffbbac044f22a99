"""Real aggregates for the reporting tests: shard files written the way the runner writes them, merged by the
real `evaluator.aggregate`.

A test states the run it needs (cases, shards, missing or killed shards, errors, a straggler, exact timings);
this module writes each shard's `results.jsonl` through `ResultWriter` and its `manifest.json` through
`write_manifest` (the runner's own writers, the contract's own models), then the real aggregate merges them.
So every number a report shows was computed by the aggregate, never by a copy of it. Edits (`set_score`,
`drop_cases`) change the shard files under the report's `results_dir` and aggregate again, as a re-run would.

Scores are drawn from a seeded generator, so a test can state its expected numbers.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import evaluator
from evaluator.contract import (
    Call,
    Counts,
    EndpointSummary,
    ErrorInfo,
    LimitChange,
    Manifest,
    MetricResult,
    Report,
    ResultRecord,
)
from evaluator.results import (
    MANIFEST_FILE,
    RESULTS_FILE,
    ResultWriter,
    file_sha256,
    read_manifest,
    read_results,
    shard_dir,
    write_manifest,
)
from evaluator.suite import Gate

METRICS = {"answer_relevancy": 0.7, "exact_match": 0.5}
ENDPOINT = "http://127.0.0.1:8000/v1"
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
_ROOT = Path(tempfile.mkdtemp(prefix="real-runs-"))


@dataclass(frozen=True)
class Timing:
    """Exact call timings: `calls` sequential calls of `latency` s per case, `in_flight` calls at once per shard."""

    latency: float = 0.25
    calls: int = 4
    attempts: int = 1
    in_flight: int = 4


def _folder() -> Path:
    return Path(tempfile.mkdtemp(dir=_ROOT))


def _calls(index: int, duration: float, timing: Timing | None) -> list[Call]:
    if timing is not None:
        return [
            Call(
                type="target" if i == 0 else "judge",
                latency_s=timing.latency,
                total_s=timing.latency,
                attempts=timing.attempts,
                prompt_tokens=1,
                completion_tokens=1,
            )
            for i in range(timing.calls)
        ]
    return [
        Call(type="target", latency_s=round(duration * 0.4, 4), attempts=1, prompt_tokens=20, completion_tokens=10),
        Call(
            type="judge",
            latency_s=round(duration * 0.5, 4),
            attempts=2 if index % 7 == 0 else 1,
            prompt_tokens=200,
            completion_tokens=40,
        ),
    ]


def write_run(
    out: Path,
    n_cases: int = 20,
    *,
    total_shards: int = 2,
    seed: int = 7,
    run_id: str = "abc123def456-0123456789ab",
    commit: str = "0123456789abcdef0123456789abcdef01234567",
    missing_shards: tuple[int, ...] = (),
    incomplete_shards: tuple[int, ...] = (),
    errored_every: int = 0,
    straggler_shard: int | None = None,
    regression_tolerance: float | None = 0.05,
    pass_all: bool = False,
    timing: Timing | None = None,
) -> Path:
    """Shard folders under `out` for n_cases spread contiguously over total_shards; returns `out`."""
    rng = random.Random(seed)
    gate = Gate(min_pass_rate=0.6, error_budget=0.05, mode="block", regression_tolerance=regression_tolerance)
    per_shard_n = -(-n_cases // total_shards)
    for shard in range(total_shards):
        if shard in missing_shards:
            continue
        indexes = range(shard * per_shard_n, min(n_cases, (shard + 1) * per_shard_n))
        slow = 4.0 if shard == straggler_shard else 1.0
        shard_start = START + timedelta(seconds=0 if timing else shard * 0.3)  # exact timings start together
        clock = shard_start
        records = []
        for i in indexes:
            duration = round(rng.uniform(0.3, 0.9) * slow, 4)
            scores = {"answer_relevancy": round(rng.uniform(0.5, 1.0), 4),
                      "exact_match": 1.0 if rng.random() < 0.8 else 0.0}  # fmt: skip
            if pass_all:
                scores = dict.fromkeys(scores, 1.0)
            if timing is not None:
                duration = timing.latency * timing.calls * 2  # queued behind the limit: twice the service time
            kind = "timeout" if errored_every and i % errored_every == errored_every - 1 else None
            metrics = {}
            if kind is None:
                for name, score in scores.items():
                    metrics[name] = MetricResult(
                        score=score, threshold=METRICS[name], success=score >= METRICS[name],
                        reason=f"reason for case-{i:05d} {name}: score {score:.2f}",
                    )  # fmt: skip
            success = kind is None and all(m.success for m in metrics.values())
            records.append(
                ResultRecord(
                    run_id=run_id, suite_hash="abc123def4567890", commit=commit, shard_index=shard,
                    total_shards=total_shards, case_id=f"case-{i:05d}", case_index=i,
                    input=f"Question number {i}: what is {i} + {i}? " * 3, expected_output=str(2 * i),
                    actual_output=str(2 * i) if success else "I do not know", metrics=metrics,
                    calls=_calls(i, duration, timing), success=success,
                    error=None if kind is None else ErrorInfo(kind=kind, message=f"{kind} after 3 attempts"),
                    duration_s=duration, started_at=clock.isoformat(),
                    finished_at=(clock + timedelta(seconds=duration)).isoformat(),
                )
            )  # fmt: skip
            clock += timedelta(seconds=duration / 4)  # four cases in flight per shard
        folder = shard_dir(out, shard)
        with ResultWriter(folder / RESULTS_FILE) as writer:
            for record in records:
                writer.write(record)
        if shard in incomplete_shards:
            continue
        if timing is not None:
            wall = len(records) * timing.latency * timing.calls / timing.in_flight
        else:
            wall = (clock - shard_start).total_seconds() + 0.5
        changes = []
        if shard == straggler_shard:  # the straggler's endpoint pushed back: the limit was cut and grew back
            changes = [
                LimitChange(time=(shard_start + timedelta(seconds=1)).isoformat(), elapsed_s=1.0, old=16, new=11.2,
                            reason="overload"),
                LimitChange(time=(shard_start + timedelta(seconds=3)).isoformat(), elapsed_s=3.0, old=11.2, new=16,
                            reason="recovered"),
            ]  # fmt: skip
        endpoint = EndpointSummary(
            calls=sum(len(r.calls) for r in records), attempts=sum(c.attempts for r in records for c in r.calls),
            by_status={"200": sum(len(r.calls) for r in records)}, peak_in_flight=16, final_limit=16.0,
            limit_decreases=sum(1 for c in changes if c.new < c.old), limit_changes=changes,
        )  # fmt: skip
        _write_manifest(
            folder, records, run_id=run_id, commit=commit, shard=shard, total_shards=total_shards, gate=gate,
            started=shard_start, wall=wall, endpoints={ENDPOINT: endpoint},
        )  # fmt: skip
    return out


def _write_manifest(
    folder: Path,
    records: list[ResultRecord],
    *,
    run_id: str,
    commit: str,
    shard: int,
    total_shards: int,
    gate: Gate,
    started: datetime,
    wall: float,
    endpoints: dict[str, EndpointSummary],
) -> None:
    errored = sum(1 for r in records if r.error is not None)
    passed = sum(1 for r in records if r.success)
    write_manifest(
        folder / MANIFEST_FILE,
        Manifest(
            run_id=run_id, suite_hash="abc123def4567890", suite_name="smoke", commit=commit, shard_index=shard,
            total_shards=total_shards, sharding="contiguous", gate=gate, suite_path="suites/smoke.yaml",
            max_calls_per_endpoint=16, case_ids=[r.case_id for r in records],
            counts=Counts(cases=len(records), passed=passed, failed=len(records) - passed - errored, errored=errored),
            results_sha256=file_sha256(folder / RESULTS_FILE), started_at=started.isoformat(),
            finished_at=(started + timedelta(seconds=wall)).isoformat(), wall_time_s=round(wall, 3),
            endpoints=endpoints,
        ),
    )  # fmt: skip


def make_report(n_cases: int = 20, *, generated_at: str = "2026-11-23T10:30:00+00:00", **run: object) -> Report:
    """The real aggregate of a run written by `write_run` (same keyword arguments)."""
    out = write_run(_folder(), n_cases, **run)  # type: ignore[arg-type]
    return _aggregate(out, generated_at)


def _aggregate(out: Path, generated_at: str) -> Report:
    report = evaluator.aggregate(out)
    report.generated_at = generated_at
    return report


def _rewrite(report: Report, edit: dict[int, object]) -> Report:
    """Copy the report's shard folders, let `edit[shard](records)` change each listed shard's records, re-vouch
    for the changed files (as a re-run would) and aggregate again."""
    assert report.results_dir is not None
    out = _folder() / "out"
    shutil.copytree(report.results_dir, out)
    for shard, change in edit.items():
        folder = shard_dir(out, shard)
        records = read_results(folder / RESULTS_FILE).records
        records = change(records)  # type: ignore[operator]
        (folder / RESULTS_FILE).unlink()
        with ResultWriter(folder / RESULTS_FILE) as writer:
            for record in records:
                writer.write(record)
        manifest = read_manifest(folder / MANIFEST_FILE).manifest
        if manifest is not None:
            errored = sum(1 for r in records if r.error is not None)
            passed = sum(1 for r in records if r.success)
            manifest.case_ids = [r.case_id for r in records]
            manifest.counts = Counts(cases=len(records), passed=passed, failed=len(records) - passed - errored,
                                     errored=errored)  # fmt: skip
            manifest.results_sha256 = file_sha256(folder / RESULTS_FILE)
            write_manifest(folder / MANIFEST_FILE, manifest)
    return _aggregate(out, report.generated_at)


def set_score(report: Report, case_id: str, metric: str, score: float | None) -> Report:
    """The aggregate after one case's metric score changed (None makes it a metric error)."""
    shard = next(c.shard for c in report.cases if c.case_id == case_id)

    def change(records: list[ResultRecord]) -> list[ResultRecord]:
        for record in records:
            if record.case_id == case_id:
                entry = record.metrics[metric]
                record.metrics[metric] = MetricResult(
                    score=score, threshold=entry.threshold, success=score is not None and score >= entry.threshold,
                    reason=f"changed to {score}", error=None if score is not None else "judge failed",
                )  # fmt: skip
                record.success = all(m.success for m in record.metrics.values())
        return records

    return _rewrite(report, {shard: change})


def drop_cases(report: Report, case_ids: set[str]) -> Report:
    """The aggregate of the same run without these cases (as if they were never in the dataset)."""
    shards = {c.shard for c in report.cases if c.case_id in case_ids}
    return _rewrite(report, dict.fromkeys(shards, lambda records: [r for r in records if r.case_id not in case_ids]))
