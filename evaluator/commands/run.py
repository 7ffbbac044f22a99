"""`evaluator run`: one shard, exactly as a pod of the Indexed Job runs it, or W local shards as W processes."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

import evaluator
from evaluator.commands.common import git_commit, handle_errors, profile_option, setup_logging
from evaluator.contract import Report
from evaluator.errors import InputError
from evaluator.local_workers import (
    EXIT_MEANING,
    LocalWorkers,
    ShardStatus,
    WorkersResult,
    fill_from_manifests,
    units_on_disk,
)
from evaluator.progress import ProgressMeter, worker_message
from evaluator.sharding import assign, index_from_environment
from evaluator.stopping import DEFAULT_GRACE_S, Cancelled, Stop, resume_line, stop_on_signals

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
    help="Run the shards on this machine, W processes at a time, each given JOB_COMPLETION_INDEX "
    "like the Job controller does (completions = --total-shards, parallelism = W).",
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
@click.option(
    "--sharding",
    envvar="EVAL_SHARDING",
    type=click.Choice(["contiguous", "balanced", "many"]),
    default=None,
    help="Assignment of cases to shards. [env: EVAL_SHARDING; default: the suite's]",
)
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
@click.option("--worker", is_flag=True, hidden=True, help="Report to a `--workers` parent on stdout.")
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
        loaded = evaluator.load_suite(suite_file)
        planned = evaluator.plan_run(loaded, profile=profile, variant=variant, limit=limit)
        mode = sharding or loaded.suite.sharding.mode
        chunk = loaded.suite.sharding.chunk_size
        total = total_shards if total_shards is not None else planned.shard_count(mode, workers)
        previous = read_timings(timings) if mode == "balanced" else None
        durations = previous.durations() if previous is not None else None
        assign(planned.units, 0, total, mode, durations=durations, chunk_size=chunk)  # validates before any shard
        commit = commit or git_commit(suite_file.resolve().parent)
        run_id = run_id or evaluator.default_run_id(loaded, commit, profile, limit)
        if workers is not None:
            if shard_index is not None:
                raise InputError("--workers runs every shard; do not combine it with --shard-index")
            log.info("%s", planned.describe())
            options = WorkerOptions(
                timings=timings, retry_errors=retry_errors, profile=profile, variant=variant, steps_dir=steps_dir,
                limit=limit, use_cache=use_cache, stop_grace=stop_grace, verbose=verbose, quiet=quiet,
            )  # fmt: skip
            code = run_local_workers(
                suite_file, out, workers, total, run_id, commit, mode, options=options, stop=stop,
                units=len(planned.units),
            )  # fmt: skip
            sys.exit(code)
        index = index_from_environment(shard_index)
        if index is None:
            if total > 1:
                raise InputError(
                    f"which shard of {total}? pass --shard-index, set JOB_COMPLETION_INDEX, or use --workers"
                )
            index = 0
        report = _WorkerReport(index) if worker else None
        try:
            outcome = evaluator.run_shard(
                loaded, out, shard_index=index, total_shards=total, run_id=run_id, commit=commit, sharding=mode,
                timings=previous, retry_errors=retry_errors, profile=profile, variant=variant, steps_dir=steps_dir,
                limit=limit, use_cache=use_cache, stop=stop, on_progress=report.progress if report else None,
            )  # fmt: skip
        except Cancelled as exc:
            if report is None:
                raise
            report.outcome("cancelled", exc.done, exc.total, **exc.counts)
            sys.exit(exc.exit_code)
        if report is not None:
            report.outcome(
                "complete", outcome.assigned, outcome.assigned, passed=outcome.passed, failed=outcome.failed,
                errored=outcome.errored,
            )  # fmt: skip


class _WorkerReport:
    """A worker's messages to its `--workers` parent (progress at most 5 times a second, then the outcome)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.last = 0.0

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done < total:
            return
        self.last = now
        click.echo(worker_message("progress", shard=self.index, done=done, total=total))

    def outcome(self, state: str, done: int, total: int, **counts: int) -> None:
        click.echo(worker_message("outcome", shard=self.index, state=state, done=done, total=total, **counts))


def read_timings(path: Path | None) -> Report | None:
    """The previous report whose per-case durations drive longest-first balancing. None when the report named does
    not exist yet (a first run on an empty results volume): every shard then splits by input length alone."""
    if path is None:
        raise InputError("'balanced' sharding needs --timings PREVIOUS_REPORT.json (or EVAL_TIMINGS)")
    if not path.exists():
        log.warning(
            "%s: no previous report (a first run?): 'balanced' sharding splits by input length instead, "
            "computed the same way by every shard",
            path,
        )
        return None
    return evaluator.load_report(path)


@dataclass(frozen=True)
class WorkerOptions:
    """What every worker of a `--workers` run is given besides its shard index."""

    timings: Path | None = None
    retry_errors: bool = True
    profile: str | None = None
    variant: str | None = None
    steps_dir: Path | None = None
    limit: int | None = None
    use_cache: bool = True
    stop_grace: float = DEFAULT_GRACE_S
    verbose: int = 0
    quiet: bool = False

    def arguments(self, live: bool) -> list[str]:
        args: list[str] = []
        for flag, value in (("--timings", self.timings), ("--profile", self.profile), ("--variant", self.variant),
                            ("--steps-dir", self.steps_dir), ("--limit", self.limit)):  # fmt: skip
            if value is not None:
                args += [flag, str(value)]
        if not self.retry_errors:
            args.append("--keep-errors")
        if not self.use_cache:
            args.append("--no-cache")
        args += ["--stop-grace", f"{self.stop_grace:g}"]
        if self.verbose:
            args.append("-" + "v" * self.verbose)
        elif self.quiet or live:  # on a terminal the progress bar stands for the workers' log lines
            args.append("-q")
        return args


def run_local_workers(
    suite_file: Path,
    out: Path,
    workers: int,
    total: int,
    run_id: str,
    commit: str,
    mode: str,
    timings: Path | None = None,
    retry_errors: bool = True,
    *,
    profile: str | None = None,
    variant: str | None = None,
    steps_dir: Path | None = None,
    options: WorkerOptions | None = None,
    stop: Stop | None = None,
    units: int | None = None,
) -> int:
    """Completions = total, parallelism = workers: start index i when a slot frees, like the Job controller.
    Prints the run's outcome (or, stopped, the resume line) and returns the run's exit code."""
    options = options or WorkerOptions(
        timings=timings, retry_errors=retry_errors, profile=profile, variant=variant, steps_dir=steps_dir
    )
    live = sys.stderr.isatty() and not options.quiet and not options.verbose
    command = [sys.executable, "-m", "evaluator", "run", str(suite_file), "--out", str(out), "--run-id", run_id,
               "--commit", commit, "--sharding", mode, "--worker", *options.arguments(live)]  # fmt: skip
    log.info("run %s: %d shards, %d at a time, into %s", run_id, total, workers, out)
    meter = ProgressMeter(f"run {run_id}", units or 0, live=live) if units else None

    def update(shards: dict[int, ShardStatus]) -> None:
        if meter is not None:
            meter.update(sum(s.done for s in shards.values()))

    if stop is None:
        with stop_on_signals(Stop(options.stop_grace)) as own:
            result = LocalWorkers(command, total, workers, own, update).run()
    else:
        result = LocalWorkers(command, total, workers, stop, update).run()
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
