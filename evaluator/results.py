"""Shard files: an append-only JSONL of finished cases and an atomically written completion manifest.

Nothing lost: every record is flushed as soon as its case finishes, so a killed pod keeps what it did; a torn last
line (the kill landed mid-write) is cut off on resume. The manifest is written via temp file + fsync + rename,
so it either exists whole or not at all, and it carries a checksum of the results it vouches for.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

RESULT_SCHEMA = "evaluator.result/v1"
MANIFEST_SCHEMA = "evaluator.manifest/v1"
RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"


def shard_dir(out: Path, index: int) -> Path:
    return out / f"shard-{index:05d}"


@dataclass
class LineProblem:
    line: int
    message: str


@dataclass
class ShardFile:
    """What is on disk for one shard: its records (in order), bad lines, and whether the tail was torn."""

    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)
    torn_tail: bool = False
    valid_bytes: int = 0


def read_results(path: Path) -> ShardFile:
    """Parses a results file; a last line without its newline is a torn write, anything else bad is corrupt."""
    shard = ShardFile()
    if not path.exists():
        return shard
    data = path.read_bytes()
    offset = 0
    number = 0
    while offset < len(data):
        number += 1
        newline = data.find(b"\n", offset)
        if newline == -1:
            shard.torn_tail = True
            shard.problems.append(LineProblem(number, "truncated last line (no newline): a write was cut off"))
            break
        raw = data[offset:newline]
        offset = newline + 1
        if not raw.strip():
            shard.valid_bytes = offset
            continue
        try:
            record = json.loads(raw)
        except ValueError as exc:
            shard.problems.append(LineProblem(number, f"corrupt line: {exc}"))
            continue
        if not isinstance(record, dict) or record.get("schema") != RESULT_SCHEMA or "case_id" not in record:
            shard.problems.append(LineProblem(number, "not an evaluator result record"))
            continue
        shard.records.append(record)
        shard.lines.append(number)
        shard.valid_bytes = offset
    return shard


class ResultWriter:
    """Appends records to a shard's results file, one flushed line each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: TextIO | None = None

    def __enter__(self) -> ResultWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def write(self, record: dict[str, Any]) -> None:
        assert self._handle is not None
        self._handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._handle.flush()


def truncate_torn_tail(path: Path, valid_bytes: int) -> None:
    """Cuts a half-written last line so the next append starts on a clean line."""
    with path.open("r+b") as handle:
        handle.truncate(valid_bytes)
        handle.flush()
        os.fsync(handle.fileno())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, content: dict[str, Any]) -> None:
    """temp file + fsync + rename + fsync of the folder: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(content, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) and content.get("schema") == MANIFEST_SCHEMA else None


def shard_dirs(out: Path) -> Iterator[tuple[int, Path]]:
    """Every `shard-NNNNN` folder under `out`, in index order."""
    found = []
    for child in out.iterdir():
        name = child.name
        if child.is_dir() and name.startswith("shard-") and name[6:].isdigit():
            found.append((int(name[6:]), child))
    yield from sorted(found)
