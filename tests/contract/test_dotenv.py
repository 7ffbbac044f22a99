"""A `.env` in the working directory never reaches a run of the `evaluator` command; the library changes nothing.

DeepEval loads `.env`, `.env.{APP_ENV}` and `.env.local` from the working directory when it is imported,
unless DEEPEVAL_DISABLE_DOTENV is set by then. A pod's or a developer's working directory may hold one with
other credentials (or EVAL_* overrides): the command must set the switch before any module imports DeepEval.
A notebook that imports `evaluator` is another matter: the process is its own, so importing changes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow

_SWITCHES = ("DEEPEVAL_DISABLE_DOTENV", "DEEPEVAL_TELEMETRY_OPT_OUT", "DOTENV_CANARY")


def _python(probe: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SWITCHES)}
    env.pop("EVAL_JUDGE_API_KEY", None)
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("module", ["evaluator", "evaluator.cli", "evaluator.contract", "evaluator.suite"])
def test_importing_the_evaluator_leaves_the_environment_unchanged(tmp_path: Path, module: str) -> None:
    probe = f"import os; before = dict(os.environ); import {module}; print(dict(os.environ) == before)"
    done = _python(probe, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"], f"importing {module} changed os.environ"


def test_a_command_does_not_load_a_dotenv_into_a_run(tmp_path: Path) -> None:
    """The command sets DeepEval's switches before it imports the subcommand, which imports the engine."""
    (tmp_path / ".env").write_text("DOTENV_CANARY=loaded\nEVAL_JUDGE_API_KEY=sk-from-dotenv\n")
    # A subcommand of the real command group whose module is this probe: it imports the engine (and so DeepEval)
    # as `evaluator run` does, then reports what the environment holds.
    probe = """
import os, click
from evaluator import cli

@click.command()
def probe() -> None:
    import evaluator.engine.runner, evaluator.engine.metrics
    print(os.environ.get("DOTENV_CANARY"), os.environ.get("EVAL_JUDGE_API_KEY"))
    print(os.environ.get("DEEPEVAL_DISABLE_DOTENV"), os.environ.get("DEEPEVAL_TELEMETRY_OPT_OUT"))

cli.SUBCOMMANDS["probe"] = "__main__:probe"
cli.main(["probe"])
"""
    done = _python(probe, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "None", "1", "1"], f"a command let DeepEval load {tmp_path / '.env'}"


def test_an_explicit_value_in_the_environment_wins(tmp_path: Path) -> None:
    probe = """
import os
os.environ["DEEPEVAL_TELEMETRY_OPT_OUT"] = "0"
from evaluator import cli
try:
    cli.main(["--help"])
except SystemExit:
    pass
print("VALUE", os.environ["DEEPEVAL_TELEMETRY_OPT_OUT"], os.environ["DEEPEVAL_DISABLE_DOTENV"])
"""
    done = _python(probe, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-3:] == ["VALUE", "0", "1"]
