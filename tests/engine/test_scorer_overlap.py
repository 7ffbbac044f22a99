"""A fresh shard asks its targets while DeepEval still imports (engine/scorer.py): the first calls do not wait for
the scorer, the answers that come back first wait for it, and a stop or a failure loses nothing and hides nothing.

The scorer's import is held by the test (`imported` replaced by a wait on an event), so what happens before it is
ready is what the test decides, not how fast this machine imports DeepEval.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import evaluator
from evaluator.engine import scorer as scorer_module
from evaluator.errors import InfrastructureError
from evaluator.options import RunOptions, prepare_run
from evaluator.prepared_shard import evaluate_prepared
from evaluator.stopping import Cancelled, Stop
from openai_stub.server import StubServer, running_stub
from tests.helpers import REPO, cases, read_records, write_suite

UNITS = 12


def test_the_engines_call_side_does_not_import_deepeval() -> None:
    """What a pod or a worker needs before its first target call imports no DeepEval (it comes on a thread)."""
    probe = (
        "import sys, evaluator.prepared_shard, evaluator.local_workers, evaluator.commands.run, evaluator.engine.unit;"
        "print('deepeval' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


RACE = """
import sys, time
from evaluator.engine import scorer
scorer.start_import()
time.sleep(float(sys.argv[1]))
from deepeval.test_case import ToolCall, Turn  # what dataset.py and metric_types.py import on the main thread
from deepeval.metrics import GEval, AnswerRelevancyMetric
import evaluator.engine.custom
scorer._imported.result()
print("ok")
"""


@pytest.mark.parametrize("after_s", [0.0, 0.05, 0.2])
def test_another_threads_deepeval_import_waits_for_the_scorers(after_s: float) -> None:
    """Two threads entering DeepEval's import cycles at different modules get each other's half-initialized
    modules ("cannot import name 'ArenaTestCase' from partially initialized module 'deepeval.test_case'"): seen on
    every one of these delays without `scorer._guarded_import`."""
    done = subprocess.run([sys.executable, "-c", RACE, str(after_s)], cwd=REPO, capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]


def _held_import(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """`imported()` waits until the returned event is set."""
    release = asyncio.Event()
    real = scorer_module.imported

    async def held() -> None:
        await release.wait()
        await real()

    monkeypatch.setattr(scorer_module, "imported", held)
    return release


async def _calls_reach(server: StubServer, count: int, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while server.stats.total < count:
        assert asyncio.get_running_loop().time() < deadline, f"{server.stats.total} calls, expected {count}"
        await asyncio.sleep(0.01)


def _run(
    tmp_path: Path, body: Callable[[StubServer, Path, Path], Coroutine[Any, Any, None]], latency: float = 0.02
) -> None:
    async def main() -> None:
        async with running_stub(latency=latency) as server:
            suite = write_suite(tmp_path, cases(UNITS), base_url=server.base_url,
                                concurrency={"max_calls_per_endpoint": 4})  # fmt: skip
            await body(server, suite, tmp_path / "out")

    asyncio.run(main())


def _prepared(suite: Path, run_id: str = "overlap") -> Any:
    return prepare_run(evaluator.load_suite(suite), RunOptions(run_id=run_id, commit="c0ffee"))


def test_a_fresh_shard_asks_every_target_before_the_scorer_is_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = _held_import(monkeypatch)
    hold_s = 1.0

    async def body(server: StubServer, suite: Path, out: Path) -> None:
        shard = asyncio.ensure_future(evaluate_prepared(_prepared(suite), out, 0, stop=Stop()))
        await _calls_reach(server, UNITS)  # every target call went out while DeepEval was "importing"
        await asyncio.sleep(hold_s)
        assert server.stats.total == UNITS and not (out / "shard-00000" / "results.jsonl").exists()
        release.set()
        outcome = await shard
        assert (outcome.passed + outcome.failed, outcome.errored) == (UNITS, 0)

    _run(tmp_path, body)
    records = read_records(tmp_path / "out" / "shard-00000" / "results.jsonl")
    assert sorted(r["case_id"] for r in records) == [f"c{i:04d}" for i in range(UNITS)]
    for record in records:
        assert set(record["metrics"]) == {"answer_relevancy"} and record["scored_with"]
        assert record["calls"][0]["type"] == "target" and {c["type"] for c in record["calls"][1:]} == {"judge"}
        assert record["duration_s"] < hold_s, "the time an answer waited for the scorer is not the unit's own"
    manifest = json.loads((tmp_path / "out" / "shard-00000" / "manifest.json").read_text())
    assert manifest["state"] == "complete" and manifest["scoring"] == records[0]["scored_with"]


def test_a_stop_abandons_the_parked_answers_and_the_resume_asks_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = _held_import(monkeypatch)

    async def body(server: StubServer, suite: Path, out: Path) -> None:
        stop = Stop(grace_s=30.0)
        shard = asyncio.ensure_future(evaluate_prepared(_prepared(suite), out, 0, stop=stop))
        await _calls_reach(server, UNITS)
        started = asyncio.get_running_loop().time()
        stop.request(signal.SIGTERM)
        with pytest.raises(Cancelled) as cancelled:
            await shard
        assert asyncio.get_running_loop().time() - started < 5.0, "parked answers get no grace"
        assert (cancelled.value.done, cancelled.value.total) == (0, UNITS)
        manifest = json.loads((out / "shard-00000" / "manifest.json").read_text())
        assert manifest["state"] == "cancelled" and manifest["stop"]["abandoned"] == UNITS
        release.set()
        again = await evaluate_prepared(_prepared(suite), out, 0, stop=Stop())
        assert again.passed + again.failed == UNITS
        assert server.stats.total > 2 * UNITS  # the targets were asked again, then the judge

    _run(tmp_path, body)
    records = read_records(tmp_path / "out" / "shard-00000" / "results.jsonl")
    assert sorted(r["case_id"] for r in records) == [f"c{i:04d}" for i in range(UNITS)], "every case exactly once"


def test_a_scorer_that_cannot_be_made_fails_the_shard_with_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The G-Eval steps (or DeepEval's import) failing while answers are parked: the shard raises that error, writes
    no record and leaves no task behind."""

    async def refused(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.5)  # long enough for the target calls to go out and park
        raise InfrastructureError("G-Eval 'x': the judge could not write evaluation steps from the criteria (503)")

    monkeypatch.setattr("evaluator.engine.runner.prepare_scorer", refused)

    async def body(server: StubServer, suite: Path, out: Path) -> None:
        with pytest.raises(InfrastructureError, match="could not write evaluation steps"):
            await evaluate_prepared(_prepared(suite), out, 0, stop=Stop())
        assert server.stats.total == UNITS
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and "worker" in repr(t)]
        assert left == []
        assert not (out / "shard-00000" / "results.jsonl").exists()

    _run(tmp_path, body)
