"""Sharded, resumable LLM evaluation on the Kubernetes Indexed Job contract: the public Python API.

The CLI is a thin layer over these functions (it only translates flags and exit codes), so a notebook, a
pipeline step and a pod get the same files and the same verdict::

    import evaluator
    suite = evaluator.load_suite("suite.yaml")
    evaluator.run_shard(suite, "results")
    report = evaluator.aggregate("results")
    print(evaluator.judge(report).label, report.totals.pass_rate)

Every function raises `evaluator.errors.EvaluatorError` (with an `exit_code`) for a user mistake or an
infrastructure failure. The files' types (`ResultRecord`, `Manifest`, `Report`) are in `evaluator.contract`.
Heavy modules (DeepEval, aiohttp) are imported on first use, so `import evaluator` stays instant.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

# DeepEval reads these once, when it is first imported, and every evaluator module is imported after this
# package: without them it would load a `.env` from the working directory into the environment (other
# credentials, EVAL_* overrides) and send telemetry. An explicit value in the environment still wins.
os.environ.setdefault("DEEPEVAL_DISABLE_DOTENV", "1")
os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "1")

__version__ = "0.1.0"

if TYPE_CHECKING:
    from collections.abc import Callable

    from evaluator.contract import Report
    from evaluator.engine.runner import ShardOutcome
    from evaluator.gate import Verdict
    from evaluator.planning import RunPlan
    from evaluator.stopping import Stop
    from evaluator.suite import LoadedSuite

__all__ = [
    "aggregate",
    "default_run_id",
    "judge",
    "load_report",
    "load_suite",
    "plan_run",
    "run_shard",
    "write_report",
]


def load_suite(path: str | Path) -> LoadedSuite:
    """Reads and validates a suite file; EVAL_TARGET_* / EVAL_JUDGE_* environment variables override it."""
    from evaluator.suite import load_suite as load

    return load(path)


def plan_run(
    suite: str | Path | LoadedSuite, *, profile: str | None = None, variant: str | None = None,
    limit: int | None = None,
) -> RunPlan:  # fmt: skip
    """What a run of `suite` evaluates: the profile's cases (every case without one; the first `limit` of them
    with one) times the variants (one variant with `variant`), checked against the metrics before any call.
    `RunPlan.units` is the work the shards split; `shard_count(mode, ...)` is the Job's completions."""
    from evaluator.planning import plan_run as make

    loaded = suite if not isinstance(suite, str | Path) else load_suite(suite)
    return make(loaded, profile=profile, variant=variant, limit=limit)


def default_run_id(suite: LoadedSuite, commit: str, profile: str | None = None, limit: int | None = None) -> str:
    """`<suite-hash[:12]>-<commit[:12]>`, plus `-<profile>` for a profile's run (a `pr` and a `nightly` run of one
    commit are different runs) and `-first<N>` for a `--limit N` smoke run. The suite hash covers what decides
    the answers (dataset, variants' targets), not the metrics, the judge or the gate: re-scoring is the same run."""
    return (
        f"{suite.suite_hash[:12]}-{commit[:12]}"
        + (f"-{profile}" if profile else "")
        + (f"-first{limit}" if limit is not None else "")
    )


def run_shard(
    suite: str | Path | LoadedSuite,
    out: str | Path,
    *,
    shard_index: int = 0,
    total_shards: int = 1,
    run_id: str | None = None,
    commit: str = "unknown",
    sharding: str | None = None,
    timings: Report | None = None,
    retry_errors: bool = True,
    profile: str | None = None,
    variant: str | None = None,
    steps_dir: str | Path | None = None,
    limit: int | None = None,
    use_cache: bool = True,
    stop: Stop | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ShardOutcome:
    """Evaluates shard `shard_index` of `total_shards` into `out/shard-NNNNN/` and returns its counts.

    Exactly what one pod of the Indexed Job does: resumes from what is already on disk, writes one flushed
    record per unit (a case answered by a variant) and a manifest at the end. `profile` selects the cases (see
    the suite's `profiles`), `limit` keeps the first N of them, `variant` restricts the run to one variant (an
    Argo fan-out over variants), and `steps_dir` is where the run's G-Eval steps are shared (default `out`; a
    fan-out's branches share one). `run_id` defaults to `default_run_id`; `timings` (a previous report) drives
    'balanced' sharding. Results scored otherwise than the suite now scores are re-scored, their answers kept;
    the judge's repeated requests come from the shard's response cache unless `use_cache=False`.

    SIGINT and SIGTERM stop it cleanly (in the main thread; pass your own `stop` to decide): no new unit, the
    ones in flight finish within `stop.grace_s`, and a `cancelled` manifest is written before `Cancelled` is
    raised. `on_progress(done, total)` follows the shard's units. Raises InputError (bad suite or dataset),
    BadShardError (the folder holds another run), InfrastructureError (error budget exceeded, or no G-Eval
    steps) or `evaluator.stopping.Cancelled` (exit code 130 or 143).
    """
    import asyncio
    import logging

    from evaluator.engine.runner import RunIdentity, ShardRunner
    from evaluator.sharding import assign
    from evaluator.stopping import Stop as NewStop
    from evaluator.stopping import stop_on_signals
    from evaluator.suite import LoadedSuite as Loaded

    loaded = suite if isinstance(suite, Loaded) else load_suite(suite)
    planned = plan_run(loaded, profile=profile, variant=variant, limit=limit)
    mode = sharding or loaded.suite.sharding.mode
    durations = timings.durations() if timings is not None else None
    plan = assign(
        planned.units, shard_index, total_shards, mode, durations=durations,
        chunk_size=loaded.suite.sharding.chunk_size,
    )  # fmt: skip
    identity = RunIdentity(
        run_id=run_id or default_run_id(loaded, commit, profile, limit),
        commit=commit,
        suite_hash=loaded.suite_hash,
        suite_name=loaded.suite.name,
    )
    logging.getLogger("evaluator.run").info(
        "run %s, suite %s, commit %s, %s", identity.run_id, identity.suite_name, commit[:12], planned.describe()
    )
    runner = ShardRunner(
        loaded, plan, identity, Path(out), profile=planned.selection.info,
        steps_dir=Path(steps_dir) if steps_dir is not None else None, variants=planned.variants, stop=stop,
        use_cache=use_cache, on_progress=on_progress,
    )  # fmt: skip
    if stop is not None:
        return asyncio.run(runner.run(retry_errors=retry_errors))
    with stop_on_signals(NewStop()) as own:
        runner.stop = own
        return asyncio.run(runner.run(retry_errors=retry_errors))


def aggregate(out: str | Path, *, expect_shards: int | None = None, cases_to: str | Path | None = None) -> Report:
    """Merges every `out/shard-*/` into one report; every problem is recorded in it, never raised.

    With `cases_to` (a REPORT.json's sidecar, `contract.cases_path(report_path)`), the cases are written there as
    they are merged and the returned report holds none in memory (`cases_file` names them): what `evaluator
    aggregate` does, so its memory does not grow with the run. Write the report with `write_report` then."""
    from evaluator.aggregation import aggregate as merge

    return merge(Path(out), expect_shards=expect_shards, cases_to=Path(cases_to) if cases_to is not None else None)


def judge(
    report: Report | str | Path,
    *,
    mode: str | None = None,
    baseline: Report | None = None,
    policy: str | None = None,
    tolerance: float | None = None,
    min_pass_rate: float | None = None,
    allow_mixed_versions: bool = False,
) -> Verdict:
    """The quality gate's verdict on a report (fails closed on any recorded problem); each keyword overrides the
    suite's gate setting of that name (`Verdict.settings` says which were used)."""
    from evaluator.gate import judge as decide

    loaded = report if not isinstance(report, str | Path) else load_report(report)
    return decide(
        loaded,
        mode=mode,
        baseline=baseline,
        policy=policy,
        tolerance=tolerance,
        min_pass_rate=min_pass_rate,
        allow_mixed_versions=allow_mixed_versions,
    )


def load_report(path: str | Path) -> Report:
    """Reads and validates a REPORT.json (v1 or v2); InputError names the file and the damaged field."""
    from evaluator.contract import load_report as load

    return load(path)


def write_report(report: Report, path: str | Path) -> None:
    """Writes REPORT.json atomically (temp file, fsync, rename), its cases into the gzip sidecar beside it
    (`report.json` -> `report.cases.jsonl.gz`, written first) unless `aggregate(cases_to=...)` already put them
    there."""
    from evaluator.atomic import write_text_atomic
    from evaluator.contract import REPORT_SCHEMA, cases_path, to_json, write_cases

    target = Path(path)
    streamed = report.cases_file is not None and not report.cases and report.cases_file.count > 0
    if not streamed:  # the cases are in memory (built, or loaded with the report): write them beside it
        written = write_cases(cases_path(target), report.cases)
        report = report.model_copy(update={"cases_file": written, "schema_version": REPORT_SCHEMA})
    elif report.cases_file is not None and not cases_path(target).exists():
        raise ValueError(f"{target}: the report's cases are in {report.cases_file.path}, which is not beside it")
    write_text_atomic(target, to_json(report) + "\n")
