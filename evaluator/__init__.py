"""Sharded, resumable LLM evaluation on the Kubernetes Indexed Job contract: the public Python API.

The CLI is a thin layer over these functions (it only translates flags and exit codes), so a notebook, a
pipeline step and a pod get the same files and the same verdict::

    import evaluator
    suite = evaluator.load_suite("suite.yaml")
    evaluator.run_shard(suite, "results")  # or run_shard(suite, "results", evaluator.RunOptions(profile="pr"))
    report = evaluator.aggregate("results")
    print(evaluator.apply_gate(report).label, report.totals.pass_rate)

Every function raises `evaluator.errors.EvaluatorError` (with an `exit_code`) for a user mistake or an
infrastructure failure. The files' types (`ResultRecord`, `Manifest`, `Report`) are in `evaluator.contract`.
Heavy modules (DeepEval, aiohttp) are imported on first use, so `import evaluator` stays instant, and importing
changes nothing in the process: DeepEval keeps its own defaults (it loads a `.env` from the working directory and
sends telemetry unless told not to). The `evaluator` command turns both off where it starts; a notebook that wants
the same sets `DEEPEVAL_DISABLE_DOTENV=1` and `DEEPEVAL_TELEMETRY_OPT_OUT=1` before its first evaluator call.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from evaluator.options import RunOptions, default_run_id
from evaluator.version import __version__ as __version__

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Unpack

    from evaluator.contract import Report
    from evaluator.engine.outcome import ShardOutcome
    from evaluator.gate import Verdict
    from evaluator.options import RunSettings
    from evaluator.planning import RunPlan
    from evaluator.stopping import Stop
    from evaluator.suite import LoadedSuite

__all__ = [
    "RunOptions",
    "aggregate",
    "apply_gate",
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


def run_shard(
    suite: str | Path | LoadedSuite,
    out: str | Path,
    options: RunOptions | None = None,
    *,
    shard_index: int = 0,
    stop: Stop | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    **settings: Unpack[RunSettings],
) -> ShardOutcome:
    """Evaluates shard `shard_index` of the run into `out/shard-NNNNN/` and returns its counts.

    Exactly what one pod of the Indexed Job does: resumes from what is already on disk, writes one flushed
    record per unit (a case answered by a variant) and a manifest at the end. The run is described by `options`
    (`evaluator.RunOptions`, the same object `evaluator run`'s flags make) or by its fields as keywords, which
    win over `options`: `total_shards` (default 1, or what 'many' sharding needs), `profile` selects the cases
    (see the suite's `profiles`), `limit` keeps the first N of them, `variant` restricts the run to one variant
    (an Argo fan-out over variants), `steps_dir` is where the run's G-Eval steps are shared (default `out`; a
    fan-out's branches share one), `run_id` defaults to `default_run_id`, `commit` to "unknown", `timings` (a
    previous report, or its path) drives 'balanced' sharding, `sharding` overrides the suite's mode. Results
    scored otherwise than the suite now scores are re-scored, their answers kept; the judge's repeated requests
    come from the shard's response cache unless `use_cache=False`; `retry_errors=False` keeps recorded errors.

    SIGINT and SIGTERM stop it cleanly (in the main thread; pass your own `stop` to decide): no new unit, the
    ones in flight finish within the grace (`stop_grace`, or `stop.grace_s`), and a `cancelled` manifest is
    written before `Cancelled` is raised. `on_progress(done, total)` follows the shard's units. Raises InputError
    (bad suite or dataset), BadShardError (the folder holds another run), InfrastructureError (error budget
    exceeded, or no G-Eval steps) or `evaluator.stopping.Cancelled` (exit code 130 or 143).
    """
    from evaluator.options import options_from, prepare_run
    from evaluator.prepared_shard import run_prepared
    from evaluator.stopping import Stop as NewStop
    from evaluator.stopping import stop_on_signals
    from evaluator.suite import LoadedSuite as Loaded

    chosen = options_from(options, settings)
    loaded = suite if isinstance(suite, Loaded) else load_suite(suite)
    prepared = prepare_run(loaded, chosen)
    if stop is not None:
        return run_prepared(prepared, Path(out), shard_index, stop=stop, on_progress=on_progress)
    with stop_on_signals(NewStop(chosen.stop_grace)) as own:
        return run_prepared(prepared, Path(out), shard_index, stop=own, on_progress=on_progress)


def aggregate(out: str | Path, *, expect_shards: int | None = None, cases_to: str | Path | None = None) -> Report:
    """Merges every `out/shard-*/` into one report; every problem is recorded in it, never raised.

    With `cases_to` (a REPORT.json's sidecar, `contract.cases_path(report_path)`), the cases are written there as
    they are merged and the returned report holds none in memory (`cases_file` names them): what `evaluator
    aggregate` does, so its memory does not grow with the run. Write the report with `write_report` then."""
    from evaluator.aggregation import aggregate as merge

    return merge(Path(out), expect_shards=expect_shards, cases_to=Path(cases_to) if cases_to is not None else None)


def apply_gate(
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
    from evaluator.gate import apply_gate as decide

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


# "Judge" names the LLM that scores answers everywhere else; this alias keeps code that calls the gate's verdict
# by that name working. It is `apply_gate`, nothing more.
judge = apply_gate


def load_report(path: str | Path) -> Report:
    """Reads and validates a REPORT.json (any schema version this evaluator writes or wrote); InputError names the
    file and the damaged field."""
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
