"""How an evaluating process ends (evaluator/process_end.py), and a worker whose shard cannot even start."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from evaluator.local_workers import _serve
from evaluator.stopping import Stop
from tests.helpers import REPO

PROBE = """
import atexit, logging, sys
from pathlib import Path
from evaluator import process_end
marker = Path(sys.argv[1])
atexit.register(lambda: marker.write_text("atexit ran"))
logging.basicConfig(stream=sys.stderr)
logging.getLogger("probe").warning("logged")
sys.stdout.write("no newline, still buffered")
{before}
process_end.end(3)
sys.stdout.write(" | end() returned")
"""


@pytest.mark.parametrize("asked", [True, False], ids=["skip-teardown", "not-asked"])
def test_the_end_flushes_output_and_runs_atexit_only_skipping_the_teardown(tmp_path: Path, asked: bool) -> None:
    marker = tmp_path / "marker"
    code = PROBE.format(before="process_end.skip_teardown()" if asked else "")
    done = subprocess.run([sys.executable, "-c", code, str(marker)], cwd=REPO, capture_output=True, text=True)
    assert "WARNING:probe:logged" in done.stderr
    assert marker.read_text() == "atexit ran"
    if asked:
        assert (done.returncode, done.stdout) == (3, "no newline, still buffered")
    else:  # a command invoked in-process (the Python API, click's test runner) returns as usual
        assert (done.returncode, done.stdout) == (0, "no newline, still buffered | end() returned")


def test_the_program_is_run_process_as_console_script_and_module() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["evaluator"] == "evaluator.cli:run_process"
    assert "run_process()" in (REPO / "evaluator" / "__main__.py").read_text()


def test_a_worker_whose_shard_cannot_start_fails_instead_of_waiting_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine failing to import in a worker (a broken install) must end the worker, not leave it waiting for a
    shard that never reports it started."""
    monkeypatch.setitem(sys.modules, "evaluator.prepared_shard", None)  # `from ... import` raises ImportError
    said: list[str] = []

    async def serve() -> int:
        return await asyncio.wait_for(_serve(None, Path("unused"), Stop(), io.StringIO("0\n1\n"), said.append), 20)  # type: ignore[arg-type]

    with pytest.raises(ImportError):
        asyncio.run(serve())
    assert sum('"ready"' in line for line in said) == 1, said  # no further shard taken
