"""`evaluator trend`: weekly minutes, cost and quality from the history that `evaluator report --history` appends.

Only `--html` needs the 'report' extra (plotly); without it that option exits 2 with the install command.
"""

from __future__ import annotations

from pathlib import Path

import click

from evaluator.commands.common import handle_errors
from evaluator.errors import InputError
from evaluator.extras import require_report_extra
from evaluator.reporting import history
from evaluator.reporting import trend as trends
from evaluator.reporting.terminal import make_console

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.argument("history_file", metavar="HISTORY.jsonl", type=_FILE)
@click.option(
    "--html",
    "html_path",
    type=_FILE,
    help="Write the trend plots as a self-contained HTML file (needs the 'report' extra).",
)
@click.option("--last", type=click.IntRange(1), default=10, show_default=True, help="Runs listed after the weeks.")
@handle_errors
def trend(history_file: Path, html_path: Path | None, last: int) -> None:
    """Weekly evaluation minutes, cost and quality from a history file written by `evaluator report --history`."""
    if not history_file.exists():
        raise InputError(f"{history_file}: history file not found")
    records = history.read(history_file)
    if not records:
        raise InputError(f"{history_file}: no run recorded yet")
    trends.print_trend(records, make_console(), last_runs=last)
    if html_path is not None:
        require_report_extra("evaluator trend --html")
        asset = trends.write_html(html_path, records)
        click.echo(f"wrote html: {html_path} (its plotting code: {asset})", err=True)
