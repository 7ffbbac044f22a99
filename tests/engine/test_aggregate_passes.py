"""Issue 22: the aggregate's first pass runs in forked processes when there are CPUs and shards to share it; the
report must be exactly the one a single process builds, damage and all (problems in shard order, variants in the
order first seen, the same cases file)."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path
from typing import Any

import pytest

from evaluator import aggregation
from evaluator.contract import to_dict
from tests.helpers import pre_recorded_run


@pytest.fixture(scope="module")
def damaged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four shards of 40 cases with a duplicate across shards, a duplicate within one, a corrupt line, a record
    in the wrong shard and a missing manifest: every kind of problem the first pass finds."""
    out = pre_recorded_run(tmp_path_factory.mktemp("passes"), 40, 4)
    lines = (out / "shard-00000" / "results.jsonl").read_bytes().splitlines(keepends=True)
    with (out / "shard-00001" / "results.jsonl").open("ab") as handle:
        handle.write(lines[0])  # the same unit in shards 0 and 1
        handle.write(b"{not json\n")
    with (out / "shard-00002" / "results.jsonl").open("ab") as handle:
        handle.write((out / "shard-00002" / "results.jsonl").read_bytes().splitlines(keepends=True)[1])
        moved = json.loads(lines[2])
        moved["shard_index"] = 3
        handle.write((json.dumps(moved) + "\n").encode())
    (out / "shard-00003" / "manifest.json").unlink()
    return out


def _aggregate(out: Path, folder: Path) -> tuple[dict[str, Any], bytes]:
    folder.mkdir()
    report = aggregation.aggregate(out, cases_to=folder / "report.cases.jsonl.gz")
    content = to_dict(report)
    content.pop("generated_at")
    return content, (folder / "report.cases.jsonl.gz").read_bytes()


def test_forked_first_pass_builds_the_same_report(
    damaged_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregation, "_MAX_SCAN_PROCESSES", 1)
    alone = _aggregate(damaged_run, tmp_path / "alone")
    monkeypatch.setattr(aggregation, "_MAX_SCAN_PROCESSES", 4)
    monkeypatch.setattr(aggregation.os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(aggregation.threading, "active_count", lambda: 1)
    contexts: list[str] = []
    real = multiprocessing.get_context

    def spied(method: str | None = None) -> Any:
        contexts.append(str(method))
        return real(method)

    monkeypatch.setattr(aggregation.multiprocessing, "get_context", spied)
    forked = _aggregate(damaged_run, tmp_path / "forked")
    assert contexts == ["fork"]  # the forked path ran
    kinds = {problem["kind"] for problem in alone[0]["problems"]}
    assert {"duplicate_case", "corrupt_line", "misplaced_record", "incomplete_shard"} <= kinds
    assert forked == alone


def test_a_process_with_other_threads_scans_alone(damaged_run: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A fork copies one thread and every lock as it was: with other threads about, the pass stays in-process."""
    monkeypatch.setattr(aggregation.os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(aggregation.threading, "active_count", lambda: 2)
    monkeypatch.setattr(aggregation.multiprocessing, "get_context", lambda *_: pytest.fail("forked"))
    content, _ = _aggregate(damaged_run, tmp_path / "alone")
    assert content["totals"]["cases"] >= 40
    shutil.rmtree(tmp_path / "alone")
