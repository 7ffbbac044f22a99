"""A `.env` in the working directory is never loaded into the evaluator's environment.

DeepEval loads `.env`, `.env.{APP_ENV}` and `.env.local` from the working directory when it is imported,
unless DEEPEVAL_DISABLE_DOTENV is set by then. A pod's or a developer's working directory may hold one with
other credentials (or EVAL_* overrides): the evaluator must set the switch before any module imports DeepEval.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("module", ["evaluator.engine.runner", "evaluator.engine.metrics"])
def test_importing_the_engine_does_not_load_a_dotenv(tmp_path: Path, module: str) -> None:
    (tmp_path / ".env").write_text("DOTENV_CANARY=loaded\nEVAL_JUDGE_API_KEY=sk-from-dotenv\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEEPEVAL_DISABLE_DOTENV", "DOTENV_CANARY"))}
    env.pop("EVAL_JUDGE_API_KEY", None)
    env["PYTHONPATH"] = str(REPO)
    probe = f"import os, {module}; print(os.environ.get('DOTENV_CANARY'), os.environ.get('EVAL_JUDGE_API_KEY'))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "None"], f"{module} let DeepEval load {tmp_path / '.env'}"
