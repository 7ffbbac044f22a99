"""The life cycle's small parts on their own: the response cache file, the progress line, what /v1/models says."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from evaluator.engine.cache import ResponseCache, request_key
from evaluator.progress import ProgressMeter, eta, read_worker_message, worker_message
from evaluator.provenance import model_from_listing

RESPONSE = b'{"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 3}}'


def test_the_cache_serves_what_earlier_runs_recorded_only(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    key = request_key({"model": "m", "messages": [{"role": "user", "content": "q"}]})
    assert key == request_key({"messages": [{"content": "q", "role": "user"}], "model": "m"})  # key order is no part
    first = ResponseCache(path).open()
    first.put(key, RESPONSE)
    assert first.get(key) is None  # this run's responses are for later runs: a first run is as without a cache
    first.close()
    second = ResponseCache(path).open()
    assert json.loads(second.get(key) or b"") == json.loads(RESPONSE) and second.hits == 1
    second.put(key, RESPONSE)  # already recorded: not written twice
    second.close()
    assert path.read_bytes().count(b"\n") == 1


def test_a_damaged_or_torn_cache_is_a_miss_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    good = json.dumps({"key": "k1", "response": json.loads(RESPONSE)})
    path.write_text(f"not json\n{json.dumps({'key': 'k0'})}\n{good}\n" + '{"key": "k2", "resp')
    cache = ResponseCache(path).open()
    assert cache.get("k1") is not None and cache.get("k0") is None and cache.get("k2") is None
    cache.put("k3", RESPONSE)
    cache.close()
    lines = path.read_text().splitlines()
    assert lines[-1].startswith('{"key": "k3"') and len(lines) == 4  # the torn line was cut before appending


def test_progress_lines_say_done_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    assert eta(0, 0.0) == "0:00:00" and eta(10, 0.0) == "?" and eta(3725, 1.0) == "1:02:05"
    caplog.set_level(logging.INFO, logger="evaluator.progress")
    meter = ProgressMeter("run r", 20, done=5)
    for done in range(6, 21):
        meter.update(done)
    meter.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "evaluator.progress"]
    assert lines[0].startswith("run r: 7/20 units (35%), ") and "ETA " in lines[0]  # every tenth: 2 units
    assert lines[-1].startswith("run r: 20/20 units (100%)") and lines[-1].endswith("ETA 0:00:00")


def test_worker_messages_round_trip_and_other_lines_are_not_messages() -> None:
    line = worker_message("progress", shard=2, done=3, total=9)
    assert read_worker_message(line) == {"kind": "progress", "shard": 2, "done": 3, "total": 9}
    assert read_worker_message("progress 3/9") is None and read_worker_message("evaluator-worker {oops") is None


@pytest.mark.parametrize(
    ("card", "revision"),
    [
        ({"id": "m", "root": "/hub/models--o--m/snapshots/" + "a" * 40}, "a" * 40),  # vLLM serving a cache path
        ({"id": "m", "root": "o/m", "revision": "v2"}, "v2"),  # a server that says its revision
        ({"id": "m", "root": "o/m"}, None),  # vLLM serving a repository id: no revision to tell
    ],
)
def test_the_revision_is_what_the_server_says(card: dict[str, str], revision: str | None) -> None:
    found = model_from_listing("m", {"object": "list", "data": [{"id": "other"}, card]})
    assert found.listed and found.root == card["root"] and found.revision == revision
    assert not model_from_listing("absent", {"data": [card]}).listed
    assert not model_from_listing("m", "not a listing").listed
