"""The README's Python API example is complete and runs: extracted from README.md and executed as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from openai_stub.server import get_stats, run_stub_in_process
from tests.helpers import REPO, cases, write_suite

pytestmark = pytest.mark.e2e


def readme_example() -> str:
    section = (REPO / "README.md").read_text(encoding="utf-8").split("### Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "README.md: no ```python block under '### Python API'"
    return match.group(1)


def test_the_example_is_five_lines() -> None:
    assert len([line for line in readme_example().splitlines() if line.strip()]) == 5


def test_the_readme_example_runs_against_a_local_server(tmp_path: Path) -> None:
    base_url, stop = run_stub_in_process(latency=0.01)
    try:
        write_suite(tmp_path, cases(6), base_url=base_url)
        (tmp_path / "example.py").write_text(readme_example(), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "PASS 1.0"
        assert (tmp_path / "results" / "shard-00000" / "manifest.json").exists()
        assert get_stats(base_url)["by_status"] == {"200": 6 * 4}  # 1 target + 3 judge calls per case
    finally:
        stop()
