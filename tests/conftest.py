"""Shared fixtures: a real stub server on 127.0.0.1 and helpers that write suites and run the real CLI."""

from __future__ import annotations

import os
import subprocess as _subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "1")
os.environ.setdefault("DEEPEVAL_DISABLE_DOTENV", "1")

# The longest test files, longest first. scripts/test.sh runs `pytest -n 2 --dist loadfile --no-loadscope-reorder`:
# each of these starts on a free worker as early as possible instead of ending the run alone on one worker.
LONGEST_FIRST = (
    "tests/ansible/test_ansible_molecule.py",
    "tests/pipeline/test_evaluator_image.py",
    "tests/journeys/test_cluster_journey.py",
    "tests/compare/test_compare_end_to_end.py",
    "tests/engine/test_builtin_model.py",
    "tests/compare/test_demo_compare.py",
    "tests/engine/test_cancellation.py",
    "tests/engine/test_run_output.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: position for position, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep their order


@pytest.fixture
def stub() -> Iterator[str]:
    """An OpenAI-compatible stub in its own process (own GIL, like a real server); yields its base URL."""
    from openai_stub.server import stub_process

    with stub_process(latency=0.01) as base_url:
        yield base_url


EvaluatorCli = Callable[..., "Completed"]


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def evaluator_cli() -> EvaluatorCli:
    """Runs `evaluator ARGS` for real: in this process by default (DeepEval's import costs seconds per process),
    as a separate `python -m evaluator` process when `subprocess=True` or when the command spawns workers."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300, subprocess: bool = False) -> Completed:
        if subprocess or "--workers" in args:
            done = _subprocess.run(
                [sys.executable, "-m", "evaluator", *args],
                capture_output=True,
                text=True,
                env={**os.environ, **(env or {})},
                timeout=timeout,
                check=False,
            )
            return Completed(done.returncode, done.stdout, done.stderr)
        from click.testing import CliRunner

        from evaluator.cli import main

        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        return Completed(result.exit_code, result.stdout, result.stderr)

    return run
