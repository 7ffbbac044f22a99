"""`evaluator aggregate`: every shard folder into one REPORT.json, problems included, never hidden."""

from __future__ import annotations

from pathlib import Path

import click

import evaluator
from evaluator.commands.common import handle_errors, setup_logging


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write REPORT.json (atomically); its cases go beside it, into REPORT.cases.jsonl.gz.",
)
@click.option(
    "--expect-shards",
    type=click.IntRange(min=1),
    default=None,
    help="The number of shards the run must have (the Job's completions); fail closed otherwise.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only the report's path (no merge lines, no problems).")
@handle_errors
def aggregate(directory: Path, out: Path, expect_shards: int | None, quiet: bool) -> None:
    """Merge the shard results under DIR into one report.

    Missing or incomplete shards, duplicate cases, corrupt or truncated lines, checksum mismatches and mixed run
    ids or suite versions are written into the report's `problems`; `evaluator gate` refuses any report that has
    one. Prints (stderr) what was merged and every problem, then (stdout) the report's path; the summary is
    `evaluator report`'s, the verdict `evaluator gate`'s. Exit 0 when the report was written, 2 when DIR holds
    no shard at all.
    """
    setup_logging(quiet=quiet)
    from evaluator.contract import cases_path

    report = evaluator.aggregate(directory, expect_shards=expect_shards, cases_to=cases_path(out))
    evaluator.write_report(report, out)
    if not quiet:  # rich, the baseline and the gate are loaded for these lines only
        from evaluator.reporting.terminal import make_console, print_merged

        print_merged(report, str(out), make_console(stderr=True))
    click.echo(str(out))
