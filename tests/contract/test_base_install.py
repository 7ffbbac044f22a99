"""`pip install .` without extras (what the evaluator image installs) runs the whole contract.

A fresh virtualenv gets the project without any extra, pinned by constraints.txt, from the same package
indexes scripts/bootstrap.sh uses. In it: `--help` of every subcommand, one shard, aggregate, gate, plan,
JUnit and Markdown reports; the HTML report (plotly, jinja2) exits 2 with the exact install command; the
image's default command (ENTRYPOINT + CMD of evaluator/Dockerfile) exits 0; and the stub server (test support)
is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from evaluator.cli import SUBCOMMANDS
from evaluator.extras import REPORT_EXTRA_INSTALL
from tests.helpers import REPO

pytestmark = pytest.mark.slow


def _pip_config(key: str) -> list[str]:
    """The machine's pip index configuration, as scripts/bootstrap.sh hands it to uv (no host hard-coded)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", key], capture_output=True, text=True, check=False
    )
    return done.stdout.split() if done.returncode == 0 else []


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(found).exists():
        pytest.skip("uv is not installed (scripts/bootstrap.sh installs it into .venv)")
    return found


@dataclass
class BaseInstall:
    bin: Path
    work: Path

    def run(self, *args: str, check_code: int | None = 0) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        done = subprocess.run(
            [str(self.bin / "evaluator"), *args], cwd=self.work, env=env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        if check_code is not None:
            assert done.returncode == check_code, f"evaluator {' '.join(args)}: {done.stdout}{done.stderr}"
        return done


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseInstall]:
    folder = tmp_path_factory.mktemp("base-install")
    venv = folder / "venv"
    uv = _uv()
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    args = []
    for url in _pip_config("global.extra-index-url"):
        if not url.startswith("file://") or Path(url.removeprefix("file://")).is_dir():
            args += ["--extra-index-url", url]
    for links in _pip_config("global.find-links"):
        if Path(links).is_dir():
            args += ["--find-links", links]
    env = {**os.environ, "UV_INDEX_STRATEGY": "unsafe-best-match"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *args,
         "-c", str(REPO / "constraints.txt"), str(REPO)],
        check=True, timeout=600, env=env,
    )  # fmt: skip
    work = folder / "work"
    work.mkdir()
    yield BaseInstall(venv / "bin", work)


def test_no_extra_is_installed_and_the_stub_is_not_shipped(base: BaseInstall) -> None:
    probe = "import importlib.util as u; print([m for m in ('plotly', 'openai_stub') if u.find_spec(m)])"
    done = subprocess.run([str(base.bin / "python"), "-c", probe], cwd=base.work, capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_help_of_every_subcommand_and_the_image_default_command(base: BaseInstall) -> None:
    listed = base.run("--help").stdout
    for name in SUBCOMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}\s", listed, re.MULTILINE), f"{name} missing from --help"
        assert "Usage: evaluator " + name in base.run(name, "--help").stdout
    dockerfile = (REPO / "evaluator" / "Dockerfile").read_text()
    entrypoint = json.loads(re.findall(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.MULTILINE)[-1])
    command = json.loads(re.findall(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)[-1])
    assert entrypoint == ["evaluator"]
    base.run(*command)  # `docker run IMAGE` with no arguments


def test_shard_aggregate_gate_plan_and_reports(base: BaseInstall) -> None:
    work = base.work
    cases = [{"id": f"c{i}", "input": f"{i} + 1?", "expected_output": str(i + 1), "actual_output": str(i + 1)}
             for i in range(4)]  # fmt: skip
    (work / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    (work / "suite.yaml").write_text(
        "name: base\ndataset: cases.jsonl\nmetrics:\n  - type: exact_match\ngate:\n  min_pass_rate: 1.0\n"
    )
    for index in (0, 1):
        base.run("run", "suite.yaml", "--out", "out", "--shard-index", str(index), "--total-shards", "2", "-q")
    base.run("aggregate", "out", "--out", "report.json", "--expect-shards", "2", "-q")
    assert "PASS" in base.run("gate", "report.json").stdout
    base.run("report", "report.json", "--junit", "r.xml", "--markdown", "r.md", "--history", "h.jsonl", "-q")
    assert (work / "r.xml").stat().st_size > 0 and (work / "r.md").stat().st_size > 0
    base.run("trend", "h.jsonl")
    # A report without timed calls cannot be sized: a clear exit 2, not an import error.
    assert "no case with a timed call" in base.run("plan", "report.json", "--cases", "10", "--minutes", "1",
                                                   check_code=2).stderr  # fmt: skip
    for command in (["report", "report.json", "--html", "r.html"], ["trend", "h.jsonl", "--html", "t.html"]):
        done = base.run(*command, check_code=2)
        assert REPORT_EXTRA_INSTALL in done.stderr and not (work / command[-1]).exists()
