"""`evaluator aggregate`: every shard folder into one REPORT.json, problems included, never hidden."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from evaluator.aggregate import aggregate as build_report
from evaluator.commands.common import handle_errors, setup_logging
from evaluator.results import write_json_atomic


def print_summary(report: dict[str, Any]) -> None:
    """A rich table in the terminal; the reporting package's when installed, a plain one otherwise."""
    try:
        from evaluator.reporting.terminal import print_summary as rich_summary
    except ImportError:
        pass
    else:
        rich_summary(report)
        return
    totals = report["totals"]
    click.echo(
        f"run {report['run_id']}: {totals['cases']} cases, {totals['passed']} passed, {totals['failed']} failed, "
        f"{totals['errored']} errored; {len(report['problems'])} problems",
        err=True,
    )


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write REPORT.json (atomically).",
)
@click.option(
    "--expect-shards",
    type=click.IntRange(min=1),
    default=None,
    help="The number of shards the run must have (the Job's completions); fail closed otherwise.",
)
@click.option("-q", "--quiet", is_flag=True, help="No summary table.")
@handle_errors
def aggregate(directory: Path, out: Path, expect_shards: int | None, quiet: bool) -> None:
    """Merge the shard results under DIR into one report.

    Missing or incomplete shards, duplicate cases, corrupt or truncated lines, checksum mismatches and mixed run
    ids or suite versions are written into the report's `problems`; `evaluator gate` refuses any report that has
    one. Exit 0 when the report was written, 2 when DIR holds no shard at all.
    """
    setup_logging(quiet=quiet)
    report = build_report(directory, expect_shards=expect_shards)
    write_json_atomic(out, report)
    if not quiet:
        print_summary(report)
    click.echo(str(out))
