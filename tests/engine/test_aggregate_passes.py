"""Issue 22: the aggregate's first pass runs in forked processes when there are CPUs and shards to share it, and
so does its second (ranges of units merged apart, written and summed in report order); the report must be exactly
the one a single process builds, damage and all (problems in shard order, variants in the order first seen, the
same cases file, byte for byte)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evaluator import aggregation
from evaluator.contract import CasesWriter, to_dict
from evaluator.tallies import Summaries
from tests.helpers import pre_recorded_run, write_suite


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


@pytest.fixture(scope="module")
def stale_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two shards of 60 cases, the first's manifest naming another scoring: 60 stale records in one shard, of
    which the report names the first 20, and a duplicate in each shard."""
    out = pre_recorded_run(tmp_path_factory.mktemp("stale"), 120, 2)
    manifest_path = out / "shard-00000" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["scoring"] = {name: "another scoring" for name in manifest["scoring"]}
    manifest_path.write_text(json.dumps(manifest))
    for shard in ("shard-00000", "shard-00001"):
        results = out / shard / "results.jsonl"
        with results.open("ab") as handle:
            handle.write(results.read_bytes().splitlines(keepends=True)[30])
    return out


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two shards of 150 cases whose two metrics score in 0..1 (betting intervals), the manifests kept true."""
    out = pre_recorded_run(tmp_path_factory.mktemp("scored"), 300, 2)
    for shard in ("shard-00000", "shard-00001"):
        results, manifest_path = out / shard / "results.jsonl", out / shard / "manifest.json"
        records = [json.loads(line) for line in results.read_text().splitlines()]
        for record in records:
            ((name, outcome),) = record["metrics"].items()
            outcome["score"] = (record["case_index"] * 37 % 101) / 100
            record["metrics"]["second"] = {**outcome, "score": (record["case_index"] * 11 % 53) / 52}
        results.write_text("".join(json.dumps(record) + "\n" for record in records))
        manifest = json.loads(manifest_path.read_text())
        manifest["results_sha256"] = hashlib.sha256(results.read_bytes()).hexdigest()
        manifest_path.write_text(json.dumps(manifest))
    return out


def _forked(monkeypatch: pytest.MonkeyPatch, part: int = 10_000) -> list[str]:
    """Two CPUs, no other thread and ranges of `part` records: both passes fork (the contexts asked are listed)."""
    monkeypatch.setattr(aggregation, "_MAX_SCAN_PROCESSES", 4)
    monkeypatch.setattr(aggregation, "_MERGE_PART", part)
    monkeypatch.setattr(aggregation.os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(aggregation.threading, "active_count", lambda: 1)
    contexts: list[str] = []
    real = multiprocessing.get_context

    def spied(method: str | None = None) -> Any:
        contexts.append(str(method))
        return real(method)

    monkeypatch.setattr(aggregation.multiprocessing, "get_context", spied)
    return contexts


def test_forked_first_pass_builds_the_same_report(
    damaged_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregation, "_MAX_SCAN_PROCESSES", 1)
    alone = _aggregate(damaged_run, tmp_path / "alone")
    contexts = _forked(monkeypatch)
    forked = _aggregate(damaged_run, tmp_path / "forked")
    assert contexts == ["fork"]  # the forked first pass ran (one range of units: the second stays in-process)
    kinds = {problem["kind"] for problem in alone[0]["problems"]}
    assert {"duplicate_case", "corrupt_line", "misplaced_record", "incomplete_shard"} <= kinds
    assert forked == alone


@pytest.mark.parametrize("part", [1, 7, 25])
def test_forked_second_pass_builds_the_same_report(
    damaged_run: Path, stale_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, part: int
) -> None:
    """Units split into ranges of `part` records, a unit's duplicates never apart; the 20 stale-scoring problems
    a shard names are its first 20 whichever ranges they fall in."""
    monkeypatch.setattr(aggregation, "_MAX_SCAN_PROCESSES", 1)
    alone = [_aggregate(run, tmp_path / f"alone-{run.parent.name}") for run in (damaged_run, stale_run)]
    contexts = _forked(monkeypatch, part)
    forked = [_aggregate(run, tmp_path / f"forked-{run.parent.name}") for run in (damaged_run, stale_run)]
    assert contexts == ["fork"] * 4  # both passes forked, for each run
    stale = [problem for problem in alone[1][0]["problems"] if problem["kind"] == "stale_scoring"]
    assert len(stale) == 20
    assert alone[1][0]["shards"]["per_shard"][0]["cases"] == 60
    assert forked == alone


def test_forked_intervals_are_the_same(scored_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each metric's betting interval computed in a forked process is the one the summary computes itself."""
    monkeypatch.setattr(aggregation, "_MAX_SCAN_PROCESSES", 1)
    alone = _aggregate(scored_run, tmp_path / "alone")
    contexts = _forked(monkeypatch, part=40)
    monkeypatch.setattr(aggregation, "_FORKED_INTERVALS_FROM", 0)
    forked = _aggregate(scored_run, tmp_path / "forked")
    assert contexts == ["fork"] * 3  # both passes and the intervals forked
    assert not alone[0]["problems"]
    metrics = alone[0]["metrics"]
    assert metrics["exact_match"]["ci_low"] != metrics["second"]["ci_low"]
    assert forked == alone


def test_summaries_extended_are_summaries_added() -> None:
    """`Summaries.extend` of the later cases' summaries is what adding them one by one gives: scores in order,
    the first threshold and error kind first seen, the ten slowest with ties to the earlier case."""
    cases = [
        {"variant": "default", "case_id": f"c{i}", "shard": i % 3, "duration_s": float(i % 4),
         "error": {"kind": ("timeout", "http")[i % 2]} if i % 5 == 0 else None, "success": i % 3 == 0,
         "metrics": {"m": {"score": i / 40, "threshold": 0.5 + i / 100, "success": i % 2 == 0},
                     **({"n": {"error": "judge failed", "success": False}} if i % 7 == 0 else {})},
         "calls": [{"type": "target", "latency_s": i / 9, "prompt_tokens": i, "completion_tokens": 1}]}
        for i in range(37)
    ]  # fmt: skip
    whole = Summaries(["default"], keep_cases=False, shared=True)
    for case in cases:
        whole.add(case)
    joined = Summaries(["default"], keep_cases=False, shared=True)
    for start, stop in ((0, 5), (5, 6), (6, 30), (30, 37)):
        part = Summaries(["default"], keep_cases=False, shared=True)
        for case in cases[start:stop]:
            part.add(case)
        joined.extend(part)
    assert vars(joined.overall) == vars(whole.overall)
    assert list(joined.overall.errors_by_kind) == list(whole.overall.errors_by_kind)
    assert joined.slowest() == whole.slowest()
    assert [case.case_id for case in whole.slowest()] == ["c3", "c7", "c11", "c15", "c19", "c23", "c27", "c31",
                                                          "c35", "c2"]  # fmt: skip


def test_a_process_with_other_threads_scans_alone(damaged_run: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A fork copies one thread and every lock as it was: with other threads about, the pass stays in-process."""
    monkeypatch.setattr(aggregation.os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(aggregation.threading, "active_count", lambda: 2)
    monkeypatch.setattr(aggregation.multiprocessing, "get_context", lambda *_: pytest.fail("forked"))
    content, _ = _aggregate(damaged_run, tmp_path / "alone")
    assert content["totals"]["cases"] >= 40
    shutil.rmtree(tmp_path / "alone")


def test_the_quiet_aggregate_loads_only_what_it_merges_with(damaged_run: Path, tmp_path: Path) -> None:
    """Start-up is part of the aggregate's time (issue 22): `evaluator aggregate -q` reads no suite (YAML, the
    metric types), prints with no rich, starts no event loop and loads no DeepEval or HTTP client."""
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['evaluator', 'aggregate', sys.argv[1], '--out', sys.argv[2], '-q']\n"
        "try:\n"
        "    runpy.run_module('evaluator', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "heavy = ('evaluator.suite', 'evaluator.baseline', 'yaml', 'rich', 'asyncio', 'deepeval', 'httpx', 'aiohttp')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-c", probe, str(damaged_run), str(report)], capture_output=True,
                          text=True, check=True, cwd=tmp_path)  # fmt: skip
    assert done.stdout.splitlines()[-1] == "[]"
    assert report.exists()


def test_a_block_of_lines_writes_the_same_cases_file(tmp_path: Path) -> None:
    """`CasesWriter.write_block` (a forked merge's lines, joined) hands gzip the same pieces, so writes the same
    bytes, as `write_bytes` of each line, whatever the blocks and lines around them."""
    rng = random.Random(3)
    lines = [b'{"case_id":"c%d","pad":"%s"}' % (i, b"x" * rng.randrange(0, 3000)) for i in range(400)]
    one_by_one = CasesWriter(tmp_path / "lines.jsonl.gz")
    for line in lines:
        one_by_one.write_bytes(line)
    blocks = CasesWriter(tmp_path / "blocks.jsonl.gz")
    start = 0
    while start < len(lines):
        stop = min(len(lines), start + rng.randrange(0, 60))
        if rng.random() < 0.2:
            for line in lines[start:stop]:
                blocks.write_bytes(line)
        else:
            piece = lines[start:stop]
            blocks.write_block(b"".join(line + b"\n" for line in piece), [len(line) for line in piece])
        start = stop
    assert blocks.close().sha256 == one_by_one.close().sha256
    assert (tmp_path / "blocks.jsonl.gz").read_bytes() == (tmp_path / "lines.jsonl.gz").read_bytes()
    with pytest.raises(ValueError, match="do not add up"):
        CasesWriter(tmp_path / "bad.jsonl.gz").write_block(b"ab\n", [3])


@pytest.fixture(scope="module")
def two_variant_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two variants of 30 cases over two shards, answered by the stub: the paired comparisons' cases are kept."""
    from click.testing import CliRunner

    from evaluator.cli import main
    from openai_stub.server import stub_process

    folder = tmp_path_factory.mktemp("variants")
    cases = [{"id": f"c{i:02d}", "input": f"Question {i}?", "expected_output": "ok"} for i in range(30)]
    with stub_process(latency=0.001) as base_url:
        suite = write_suite(folder, cases, base_url=base_url, metrics=[{"type": "exact_match"}], judge=None,
                            variants=[{"name": "ref", "model": "m-ref"}, {"name": "cand", "model": "m-cand"}])  # fmt: skip
        for index in (0, 1):
            args = ["run", str(suite), "--out", str(folder / "out"), "--shard-index", str(index)]
            done = CliRunner().invoke(main, [*args, "--total-shards", "2", "--run-id", "variants"])
            assert done.exit_code == 0, done.output
    return folder / "out"


def test_forked_second_pass_of_variants_is_the_same(two_variant_run: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """With variants the summaries keep every case for the paired comparisons: the ranges' come back in order."""
    monkeypatch.setattr(aggregation, "_MAX_SCAN_PROCESSES", 1)
    alone = _aggregate(two_variant_run, tmp_path / "alone")
    contexts = _forked(monkeypatch, part=7)
    forked = _aggregate(two_variant_run, tmp_path / "forked")
    assert contexts == ["fork"] * 2
    assert list(alone[0]["variants"]) == ["ref", "cand"] and alone[0]["totals"]["cases"] == 60
    assert alone[0]["comparisons"]
    assert forked == alone
