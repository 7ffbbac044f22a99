"""`evaluator run`: one shard, exactly as a pod of the Indexed Job runs it, or W local shards as W processes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

import evaluator
from evaluator.commands.common import git_commit, handle_errors, profile_option, setup_logging
from evaluator.contract import Report
from evaluator.errors import EXIT_BAD_SHARD, EXIT_INFRASTRUCTURE, EXIT_INPUT_ERROR, InputError
from evaluator.reporting.terminal import print_summary
from evaluator.sharding import assign, index_from_environment

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
    Finished units are never run twice: re-running with the same OUT resumes where the shard stopped.

    \b
    Exit codes: 0 shard finished (quality failures included), 2 bad suite/dataset/flag,
    3 bad shard (retrying cannot help), 4 infrastructure failure (retrying may help).
    """
    setup_logging(verbose, quiet)
    loaded = evaluator.load_suite(suite_file)
    planned = evaluator.plan_run(loaded, profile=profile, variant=variant)
    mode = sharding or loaded.suite.sharding.mode
    chunk = loaded.suite.sharding.chunk_size
    total = total_shards if total_shards is not None else planned.shard_count(mode, workers)
    previous = read_timings(timings) if mode == "balanced" else None
    durations = previous.durations() if previous is not None else None
    assign(planned.units, 0, total, mode, durations=durations, chunk_size=chunk)  # validates before any shard
    commit = commit or git_commit(suite_file.resolve().parent)
    run_id = run_id or evaluator.default_run_id(loaded, commit, profile)
    if workers is not None:
        if shard_index is not None:
            raise InputError("--workers runs every shard; do not combine it with --shard-index")
        log.info("%s", planned.describe())
        code = run_local_workers(
            suite_file, out, workers, total, run_id, commit, mode, timings, retry_errors, profile=profile,
            variant=variant, steps_dir=steps_dir,
        )  # fmt: skip
        sys.exit(code)
    index = index_from_environment(shard_index)
    if index is None:
        if total > 1:
            raise InputError(f"which shard of {total}? pass --shard-index, set JOB_COMPLETION_INDEX, or use --workers")
        index = 0
    evaluator.run_shard(
        loaded, out, shard_index=index, total_shards=total, run_id=run_id, commit=commit, sharding=mode,
        timings=previous, retry_errors=retry_errors, profile=profile, variant=variant, steps_dir=steps_dir,
    )  # fmt: skip


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


def run_local_workers(
    suite_file: Path,
    out: Path,
    workers: int,
    total: int,
    run_id: str,
    commit: str,
    mode: str,
    timings: Path | None,
    retry_errors: bool,
    *,
    profile: str | None = None,
    variant: str | None = None,
    steps_dir: Path | None = None,
) -> int:
    """Completions = total, parallelism = workers: start index i when a slot frees, like the Job controller."""
    command = [sys.executable, "-m", "evaluator", "run", str(suite_file), "--out", str(out), "--run-id", run_id,
               "--commit", commit, "--sharding", mode]  # fmt: skip
    if timings is not None:
        command += ["--timings", str(timings)]
    if profile is not None:
        command += ["--profile", profile]
    if variant is not None:
        command += ["--variant", variant]
    if steps_dir is not None:
        command += ["--steps-dir", str(steps_dir)]
    if not retry_errors:
        command.append("--keep-errors")
    log.info("run %s: %d shards, %d at a time, into %s", run_id, total, workers, out)
    pending = list(range(total))
    running: dict[int, subprocess.Popen[bytes]] = {}
    codes: dict[int, int] = {}
    started = time.monotonic()

    def stop_children(signum: int, _frame: Any) -> None:
        for process in running.values():
            process.send_signal(signum)

    previous = {s: signal.signal(s, stop_children) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while pending or running:
            while pending and len(running) < workers:
                index = pending.pop(0)
                env = {**os.environ, "JOB_COMPLETION_INDEX": str(index), "EVAL_TOTAL_SHARDS": str(total)}
                running[index] = subprocess.Popen(command, env=env)
            for index, process in list(running.items()):
                code = process.poll()
                if code is not None:
                    codes[index] = code
                    del running[index]
                    if code:
                        log.warning("shard %d exited with %d", index, code)
            time.sleep(0.05)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("all %d shards ended in %.1fs", total, time.monotonic() - started)
    print_run_summary(out, total)
    failed = {i: c for i, c in codes.items() if c}
    if not failed:
        return 0
    click.echo(f"failed shards: {json.dumps(failed)}", err=True)
    for code in (EXIT_INPUT_ERROR, EXIT_BAD_SHARD):
        if code in failed.values():
            return code
    return EXIT_INFRASTRUCTURE


def print_run_summary(out: Path, total: int) -> None:
    """The terminal table after a local multi-shard run (same as `evaluator aggregate` prints)."""
    try:
        report = evaluator.aggregate(out, expect_shards=total)
    except InputError as exc:
        click.echo(f"no summary: {exc.message}", err=True)
        return
    print_summary(report)
