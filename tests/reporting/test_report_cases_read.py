"""Reading a v5 report's cases file (issue 22): every line validated whatever the checksum says, the count held to
what REPORT.json declares, the text decompressed a line at a time, and the collector paused only while reading."""

from __future__ import annotations

import gc
import gzip
import hashlib
import json
from pathlib import Path

import pytest

import evaluator
from evaluator.contract import cases_path, load_report
from evaluator.errors import InputError
from evaluator.gcpause import paused_gc
from tests.reporting.real_runs import make_report


@pytest.fixture()
def written(tmp_path: Path) -> Path:
    path = tmp_path / "report.json"
    evaluator.write_report(make_report(6, total_shards=2), path)
    return path


def _forge(report: Path, lines: list[bytes]) -> None:
    """Replace the cases file and make REPORT.json vouch for it (sha256 and count), as only a deliberate edit can:
    the checksum then holds, so only validation stands between these lines and the reports."""
    data = gzip.compress(b"".join(lines))
    cases_path(report).write_bytes(data)
    content = json.loads(report.read_text(encoding="utf-8"))
    content["cases_file"].update(sha256=hashlib.sha256(data).hexdigest(), count=len(lines))
    report.write_text(json.dumps(content), encoding="utf-8")


def _lines(report: Path) -> list[bytes]:
    return gzip.decompress(cases_path(report).read_bytes()).splitlines(keepends=True)


def test_a_cases_file_with_a_matching_checksum_is_still_validated(written: Path) -> None:
    lines = _lines(written)
    case = json.loads(lines[3])
    case["metrics"][next(iter(case["metrics"]))]["score"] = "high"
    lines[3] = json.dumps(case).encode() + b"\n"
    _forge(written, lines)
    with pytest.raises(InputError, match=r"report\.cases\.jsonl\.gz: line 4: field 'metrics\..*\.score'"):
        load_report(written)


@pytest.mark.parametrize("change", ["fewer", "more"])
def test_a_count_that_differs_from_the_lines_is_an_error(written: Path, change: str) -> None:
    lines = _lines(written)
    _forge(written, lines)
    content = json.loads(written.read_text(encoding="utf-8"))
    content["cases_file"]["count"] = len(lines) + (1 if change == "fewer" else -1)
    written.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(InputError, match=rf"holds {len(lines)} cases, the report's cases_file.count says"):
        load_report(written)


def test_a_file_that_is_no_gzip_is_named(written: Path) -> None:
    _forge(written, [])
    data = b"plain text, not gzip\n"
    cases_path(written).write_bytes(data)
    content = json.loads(written.read_text(encoding="utf-8"))
    content["cases_file"].update(sha256=hashlib.sha256(data).hexdigest(), count=1)
    written.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(InputError, match=r"report\.cases\.jsonl\.gz: not gzip-compressed JSON Lines"):
        load_report(written)


def test_the_cases_read_back_equal_the_cases_written(written: Path) -> None:
    report = make_report(6, total_shards=2)
    loaded = load_report(written)
    assert loaded.cases == report.cases and len(loaded.cases) == 6
    assert gc.isenabled(), "reading paused the collector and did not resume it"


def test_paused_gc_resumes_as_it_was_even_after_an_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled(), "a collector the caller had turned off stays off"
    finally:
        gc.enable()
