"""What every command shares: error handling that never shows a traceback for a user mistake, logging, and the
options that mean one thing to several commands."""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar, get_args

import click

from evaluator.errors import EvaluatorError
from evaluator.sharding import ShardingMode
from evaluator.stopping import Cancelled

P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turns an EvaluatorError into its message on stderr and its exit code."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except Cancelled as exc:  # an outcome, not an error: the resume line, exit 128 + the signal
            click.echo(exc.message, err=True)
            sys.exit(exc.exit_code)
        except EvaluatorError as exc:
            for line in exc.message.splitlines():
                click.echo(f"error: {line}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def profile_option(default: str = "every case") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`--profile NAME` (env EVAL_PROFILE): which of the suite's profiles selects the run's cases. One definition
    for `run`, `prepare` and `demo`, so a pipeline's EVAL_PROFILE means the same to each."""
    return click.option(
        "--profile",
        envvar="EVAL_PROFILE",
        default=None,
        help=f"The suite's profile selecting the cases (e.g. pr: a fixed-seed sample; nightly: all). "
        f"[env: EVAL_PROFILE; default: {default}]",
    )


def sharding_option(purpose: str = "") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`--sharding MODE` (env EVAL_SHARDING): how cases are assigned to shards, the suite's `sharding.mode`
    overridden. One definition for `run` and `prepare`, so a pipeline's EVAL_SHARDING means the same to each."""
    return click.option(
        "--sharding",
        envvar="EVAL_SHARDING",
        type=click.Choice(get_args(ShardingMode)),
        default=None,
        help=f"Assignment of cases to shards{purpose}. [env: EVAL_SHARDING; default: the suite's]",
    )


def tolerance_option(help_text: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`--tolerance` of `gate` and `report`: the suite's gate.regression_tolerance overridden, on the 0-1 scale
    both read it on (each command says what the drop is measured against)."""
    return click.option("--tolerance", type=click.FloatRange(0.0, 1.0), default=None, help=help_text)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    for noisy in ("httpx", "httpcore", "openai", "deepeval", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def git_commit(start: Path) -> str:
    """The commit being evaluated, for the run id and the report; 'unknown' outside a repository."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=start, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip() if completed.returncode == 0 else "unknown"
