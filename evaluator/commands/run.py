"""`evaluator run`: one shard, exactly as a pod of the Indexed Job runs it, or W local shards as W processes."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

import evaluator
from evaluator.commands.common import git_commit, handle_errors, profile_option, setup_logging, sharding_option
from evaluator.errors import EvaluatorError, InputError
from evaluator.local_workers import (
    EXIT_MEANING,
    LocalWorkers,
    ShardStatus,
    WorkersResult,
    fill_from_manifests,
    read_run_settings,
    release_workers,
    run_settings_line,
    serve_shards,
    start_worker,
    units_on_disk,
)
from evaluator.options import PreparedRun, RunOptions, prepare_run
from evaluator.process_end import skip_teardown
from evaluator.progress import ProgressMeter
from evaluator.sharding import index_from_environment
from evaluator.stopping import DEFAULT_GRACE_S, Stop, resume_line, stop_on_signals

if TYPE_CHECKING:
    from evaluator.planning import RunPlan
    from evaluator.suite import LoadedSuite

log = logging.getLogger("evaluator.run")


@click.command(context_settings={"show_default": True})
@click.argument("suite_file", metavar="SUITE.yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    envvar="EVAL_OUT_DIR",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Results folder; each shard writes OUT/shard-NNNNN/. Re-using it resumes. [env: EVAL_OUT_DIR]",
)
@click.option(
    "--shard-index",
    type=click.IntRange(min=0),
    default=None,
    help="This shard's index. [default: $JOB_COMPLETION_INDEX, as the Indexed Job sets it, else 0]",
)
@click.option(
    "--total-shards",
    envvar="EVAL_TOTAL_SHARDS",
    type=click.IntRange(min=1),
    default=None,
    help="Number of shards (the Job's completions). [env: EVAL_TOTAL_SHARDS; default 1, or --workers]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Run every shard on this machine with W worker processes, each taking the next shard index when it is "
    "free, as the Job controller hands indices to pods (completions = --total-shards, parallelism = W).",
)
@click.option(
    "--run-id",
    envvar="EVAL_RUN_ID",
    default=None,
    help="Ties the shards of one run together. [env: EVAL_RUN_ID; default <suite-hash>-<commit>]",
)
@click.option(
    "--commit",
    envvar="EVAL_COMMIT",
    default=None,
    help="Commit under evaluation. [env: EVAL_COMMIT; default: git rev-parse HEAD]",
)
@sharding_option()
@click.option(
    "--timings",
    envvar="EVAL_TIMINGS",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A previous REPORT.json whose per-case durations drive 'balanced' sharding. [env: EVAL_TIMINGS]",
)
@profile_option()
@click.option(
    "--variant",
    envvar="EVAL_VARIANT",
    default=None,
    help="Evaluate only this variant (one branch of a fan-out over variants). [env: EVAL_VARIANT; default: all]",
)
@click.option(
    "--steps-dir",
    envvar="EVAL_STEPS_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the run's G-Eval steps are shared (g_eval_steps.json), when the branches of a fan-out write "
    "into separate folders. [env: EVAL_STEPS_DIR; default: OUT]",
)
@click.option(
    "--retry-errors/--keep-errors",
    default=True,
    help="On resume, re-run cases that ended in an infrastructure error.",
)
@click.option(
    "--limit",
    envvar="EVAL_LIMIT",
    type=click.IntRange(min=1),
    default=None,
    help="Only the first N selected cases (a smoke run; the run id gains -firstN). [env: EVAL_LIMIT]",
)
@click.option(
    "--cache/--no-cache",
    "use_cache",
    default=True,
    help="Answer requests sent before from the shard's response cache (re-scoring calls the judge only for what "
    "is new); --no-cache neither reads nor writes it. Recorded answers are re-scored, never re-asked, either way.",
)
@click.option(
    "--stop-grace",
    envvar="EVAL_STOP_GRACE_S",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE_S,
    help="On SIGINT/SIGTERM, seconds the units in flight get to finish before they are abandoned (keep it below "
    "the pod's terminationGracePeriodSeconds, 30 by default). [env: EVAL_STOP_GRACE_S]",
)
@click.option("--worker", is_flag=True, hidden=True, help="Take shards from a `--workers` parent (stdin/stdout).")
@click.option("-v", "--verbose", count=True, help="More log output.")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
@handle_errors
def run(
    suite_file: Path,
    out: Path,
    shard_index: int | None,
    total_shards: int | None,
    workers: int | None,
    run_id: str | None,
    commit: str | None,
    sharding: str | None,
    timings: Path | None,
    profile: str | None,
    variant: str | None,
    steps_dir: Path | None,
    retry_errors: bool,
    limit: int | None,
    use_cache: bool,
    stop_grace: float,
    worker: bool,
    verbose: int,
    quiet: bool,
) -> None:
    """Evaluate one shard of SUITE.yaml into OUT.

    \b
    In a pod of the Indexed Job:   evaluator run /suite/suite.yaml --out /results
        (JOB_COMPLETION_INDEX, EVAL_TOTAL_SHARDS and EVAL_RUN_ID come from the Job)
    On a laptop, one shard:        evaluator run suite.yaml --out out --shard-index 2 --total-shards 8
    On a laptop, all shards:       evaluator run suite.yaml --out out --workers 4

    The work is every selected case answered by every variant of the suite; shards split that product.
    Finished units are never run twice: re-running with the same OUT resumes where the shard stopped. The run
    is what decides the answers (dataset, variants, targets, selection): change a metric, a threshold, the
    judge or the gate and run into the same OUT, and the recorded answers are re-scored (the target is not
    called; the judge only for what is new) or, for the gate, nothing runs at all.

    SIGINT (Ctrl-C) or SIGTERM (a pod's eviction or deletion) stops cleanly: no new unit starts, the ones in
    flight get --stop-grace seconds, the shard is marked cancelled, one line says what was done, and the
    same command resumes.

    \b
    Exit codes: 0 shard(s) finished (quality failures included), 2 bad suite/dataset/flag,
    3 bad shard (retrying cannot help), 4 infrastructure failure (retrying may help),
    130 stopped by SIGINT, 143 stopped by SIGTERM (re-run to resume).
    """
    setup_logging(verbose, quiet)
    with stop_on_signals(Stop(stop_grace)) as stop:
        if workers is not None and shard_index is not None:
            raise InputError("--workers runs every shard; do not combine it with --shard-index")
        options = RunOptions(
            profile=profile, variant=variant, limit=limit, sharding=sharding, total_shards=total_shards,
            timings=timings, run_id=run_id, commit=commit or git_commit(suite_file.resolve().parent),
            retry_errors=retry_errors, steps_dir=steps_dir, use_cache=use_cache, stop_grace=stop_grace,
        )  # fmt: skip
        if worker:
            sys.exit(_serve_as_worker(suite_file, out, options, stop))
        if workers is None:  # this process evaluates
            skip_teardown()
        # The workers start now: each imports the engine while this process loads and plans the run.
        command = worker_command(suite_file, out, options, verbose=verbose, quiet=quiet)
        count = min(workers, total_shards) if workers is not None and total_shards else workers or 0
        warm = [start_worker(command) for _ in range(count)]
        try:
            loaded = evaluator.load_suite(suite_file)
            if (sharding or loaded.suite.sharding.mode) == "balanced" and timings is None:
                raise InputError("'balanced' sharding needs --timings PREVIOUS_REPORT.json (or EVAL_TIMINGS)")
            prepared = prepare_run(loaded, options, workers=workers)  # the one plan of this process's shards
        except BaseException:
            release_workers(warm)
            raise
        if workers is not None:
            log.info("%s", prepared.plan.describe())
            code = run_local_workers(suite_file, out, prepared, workers, stop=stop, verbose=verbose, quiet=quiet,
                                     warm=warm)  # fmt: skip
            sys.exit(code)
        index = index_from_environment(shard_index)
        if index is None:
            if prepared.total > 1:
                raise InputError(
                    f"which shard of {prepared.total}? pass --shard-index, set JOB_COMPLETION_INDEX, or use --workers"
                )
            index = 0
        from evaluator.prepared_shard import run_prepared

        run_prepared(prepared, out, index, stop=stop)


def _serve_as_worker(suite_file: Path, out: Path, options: RunOptions, stop: Stop) -> int:
    """A `--workers` child: plans the run while the parent plans it too, then takes the
    parent's run settings (its first stdin line) and serves shards. When the parent closes stdin first (it found
    the suite or a flag wrong, and said so), the worker ends quietly: its own failure would only repeat it."""
    skip_teardown()

    loaded: LoadedSuite | None = None
    planned: RunPlan | None = None
    failure: EvaluatorError | None = None
    try:
        loaded = evaluator.load_suite(suite_file)
        planned = evaluator.plan_run(loaded, profile=options.profile, variant=options.variant, limit=options.limit)
    except EvaluatorError as exc:
        failure = exc
    settings = read_run_settings(sys.stdin)
    if settings is None:
        return 0
    if failure is not None:
        raise failure
    assert loaded is not None
    prepared = prepare_run(loaded, replace(options, **settings), planned=planned)  # type: ignore[arg-type]
    return serve_shards(prepared, out, stop)


def worker_command(
    suite_file: Path, out: Path, options: RunOptions, *, verbose: int = 0, quiet: bool = False
) -> list[str]:
    """How a `--workers` parent starts each worker process: the run's options as flags (the settings the parent
    plans come on the worker's stdin)."""
    command = [sys.executable, "-m", "evaluator", "run", str(suite_file), "--out", str(out), "--worker",
               *options.worker_arguments()]  # fmt: skip
    if verbose:
        command.append("-" + "v" * verbose)
    elif quiet or _live(quiet, verbose):  # on a terminal the progress bar stands for the workers' log lines
        command.append("-q")
    return command


def _live(quiet: bool, verbose: int) -> bool:
    return sys.stderr.isatty() and not quiet and not verbose


def run_local_workers(
    suite_file: Path, out: Path, prepared: PreparedRun, workers: int, *, stop: Stop | None = None,
    verbose: int = 0, quiet: bool = False, warm: list[subprocess.Popen[str]] | None = None,
) -> int:  # fmt: skip
    """Completions = the prepared run's shards, parallelism = `workers` long-lived processes, each taking the next
    index when it is free, like the Job controller hands indices to pods. `warm`: workers started already (of
    `worker_command` with the same options). Prints the run's outcome (or, stopped, the resume line) and returns
    the run's exit code."""
    command = worker_command(suite_file, out, prepared.options, verbose=verbose, quiet=quiet)
    live = _live(quiet, verbose)
    run_id, total, units = prepared.run_id, prepared.total, len(prepared.plan.units)
    settings = run_settings_line(prepared)
    warm = list(warm or [])
    release_workers(warm[min(workers, total) :])  # started for a shard count the plan did not need
    del warm[min(workers, total) :]
    log.info("run %s: %d shards, %d worker processes, into %s", run_id, total, min(workers, total), out)
    meter = ProgressMeter(f"run {run_id}", units, live=live) if units else None

    def update(shards: dict[int, ShardStatus]) -> None:
        if meter is not None:
            meter.update(sum(s.done for s in shards.values()))

    if stop is None:
        with stop_on_signals(Stop(prepared.options.stop_grace)) as own:
            result = LocalWorkers(command, total, workers, own, update, settings=settings, warm=warm).run()
    else:
        result = LocalWorkers(command, total, workers, stop, update, settings=settings, warm=warm).run()
    if meter is not None:
        meter.close()
    fill_from_manifests(result.shards, out, run_id)
    _print_outcome(result, run_id, out, units)
    return result.exit_code


def _print_outcome(result: WorkersResult, run_id: str, out: Path, units: int | None) -> None:
    """What the run did: the resume line when stopped, else one line of counts and the failed shards."""
    shards = result.shards.values()
    if result.cancelled:
        done = sum(s.done if s.started else units_on_disk(out, s.index, run_id) for s in shards)
        click.echo(resume_line(done, units or sum(s.total for s in shards)), err=True)
        return
    done = sum(s.done for s in shards)
    counts = f"{sum(s.passed for s in shards)} passed, {sum(s.failed for s in shards)} failed, " \
             f"{sum(s.errored for s in shards)} errored"  # fmt: skip
    complete = sum(1 for s in shards if s.state == "complete")
    click.echo(
        f"run {run_id}: {done} of {units if units is not None else done} units done in {result.wall_s:.1f}s "
        f"({counts}); {complete} of {len(result.shards)} shards complete"
    )
    if result.failed:
        failed = ", ".join(
            f"shard {i}: exit {code}" + (f" ({EXIT_MEANING[code]})" if code in EXIT_MEANING else "")
            for i, code in sorted(result.failed.items())
        )
        click.echo(f"failed shards: {failed}; their errors are above; re-run the same command to retry", err=True)
    else:
        click.echo(f"next: evaluator aggregate {out} --out REPORT.json && evaluator gate REPORT.json", err=True)
