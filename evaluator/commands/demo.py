"""`evaluator demo`: the whole contract end to end on this machine, with a real small LLM on 127.0.0.1.

Starts the built-in model server, runs the example suite as several local shards (each a separate process given
JOB_COMPLETION_INDEX, as in the Kubernetes Job), aggregates, writes the reports and applies the gate.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import click

from evaluator.commands.common import git_commit, handle_errors, profile_option, setup_logging
from evaluator.contract import Report
from evaluator.errors import EXIT_GATE_FAILED

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_SUITE = EXAMPLES / "demo" / "suite.yaml"
COMPARE_SUITE = EXAMPLES / "compare" / "suite.yaml"
COMPARE_PROFILE = "smoke"  # one case per family: 3 variants x 5 cases on a 135M model on two cores


@click.command()
@click.option(
    "--suite",
    "suite_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    show_default="the built-in example (with --compare: the built-in comparison example)",
    help="Suite to run against the built-in model.",
)
@click.option(
    "--compare",
    "comparison",
    is_flag=True,
    help="Comparison mode: the built-in example of three variants (model, system prompt, sampling) of one "
    f"assistant, judged by one judge and gated on paired differences [profile: {COMPARE_PROFILE}].",
)
@profile_option(f"every case, or {COMPARE_PROFILE} with --compare")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Results folder (shards, report.json, reports). Re-using it resumes.",
)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Local shards.")
@click.option("--fresh", is_flag=True, help="Delete OUT first instead of resuming.")
@handle_errors
def demo(suite_file: Path | None, comparison: bool, profile: str | None, out: Path, workers: int, fresh: bool) -> None:
    """Run the example suite end to end against the built-in model (no GPU, no cluster).

    SmolLM2-135M answers and judges: the scores are meaningless, the point is the pipeline (shards, resume,
    aggregate, reports, gate). The suite's gate is in 'warn' mode. Point the same suite at vLLM with
    EVAL_TARGET_BASE_URL / EVAL_JUDGE_BASE_URL for real scores.

    With --compare every case is answered by each of three variants, sharded as (variant, case) units; the
    reports show a leaderboard, paired differences and flipped cases, and the gate is no_regression.
    """
    setup_logging()
    import evaluator
    from evaluator.commands.run import run_local_workers
    from evaluator.localmodel import serve_model
    from evaluator.options import RunOptions, prepare_run

    if suite_file is None:
        suite_file = COMPARE_SUITE if comparison else EXAMPLE_SUITE
    if comparison and profile is None:
        profile = COMPARE_PROFILE
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = evaluator.load_suite(suite_file)
    prepared = prepare_run(loaded, RunOptions(profile=profile, total_shards=workers, commit=git_commit(Path.cwd())))
    click.echo(prepared.plan.describe(), err=True)
    started = time.monotonic()
    with serve_model(log_file=out / "model-server.log") as base_url:
        click.echo(f"built-in model serving at {base_url}", err=True)
        os.environ["EVAL_TARGET_BASE_URL"] = base_url
        os.environ["EVAL_JUDGE_BASE_URL"] = base_url
        code = run_local_workers(suite_file, out, prepared, workers)
    if code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        sys.exit(code)  # stopped: the workers said what was done and how to resume
    if code:
        click.echo(f"shards failed (exit {code}); see the log above; re-run to resume", err=True)
    report_path = out / "report.json"
    report = evaluator.aggregate(out, expect_shards=workers)
    evaluator.write_report(report, report_path)
    written = _write_reports(report, out)
    verdict = evaluator.apply_gate(report)
    click.echo(f"\nreport: {report_path}" + "".join(f"\n{kind}: {path}" for kind, path in written), err=True)
    click.echo(f"demo finished in {time.monotonic() - started:.0f}s", err=True)
    if not verdict.passed:
        for reason in [*verdict.reasons, *verdict.inconclusive]:
            click.echo(f"  - {reason}", err=True)
    if code:
        sys.exit(code)
    if verdict.blocks:
        sys.exit(EXIT_GATE_FAILED)
    shown = "PASS" if verdict.passed else f"WARN ({verdict.label}; mode 'warn': not blocking)"
    click.echo(f"gate: {shown}", err=True)


def _write_reports(report: Report, out: Path) -> list[tuple[str, Path]]:
    """JUnit, Markdown and HTML (HTML only with the 'report' extra); the JSON report is written already."""
    from evaluator.reporting.api import write_all

    try:
        return write_all(report, out)
    except Exception as exc:  # a report renderer must not hide the run's verdict
        click.echo(f"reports not written: {exc}", err=True)
        return []
