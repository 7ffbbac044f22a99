"""User-facing errors and the exit codes that the Kubernetes Job's podFailurePolicy keys on.

Every error a user can cause is one of these: the CLI prints its message (file, line, field) and exits with
its code, never a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_INPUT_ERROR = 2
EXIT_BAD_SHARD = 3
EXIT_INFRASTRUCTURE = 4


class EvaluatorError(Exception):
    """Base of every expected failure; carries the process exit code."""

    exit_code = EXIT_INPUT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(EvaluatorError):
    """Bad suite, dataset, report or flag: the Job must fail as a whole (retrying cannot help)."""

    exit_code = EXIT_INPUT_ERROR


class BadShardError(EvaluatorError):
    """A problem confined to one shard that a retry cannot fix (the index fails, the others go on)."""

    exit_code = EXIT_BAD_SHARD


class InfrastructureError(EvaluatorError):
    """The endpoint failed beyond the retries or the error budget: retrying the shard may help."""

    exit_code = EXIT_INFRASTRUCTURE


def location(file: str, line: int | None = None, field: str | None = None) -> str:
    """Formats `file:line: field` the way compilers do, so editors can jump to it."""
    where = file
    if line is not None:
        where += f":{line}"
    if field:
        where += f": field '{field}'"
    return where
