"""Shard files: an append-only JSONL of finished cases and an atomically written completion manifest.

Nothing lost: every record is flushed as soon as its case finishes, so a killed pod keeps what it did; a torn last
line (the kill landed mid-write) is cut off on resume. The manifest is written via temp file + fsync + rename,
so it either exists whole or not at all, and it carries a checksum of the results it vouches for.

Lines are split on b"\\n" only (JSON Lines): a record may hold U+2028, U+0085 or any other character that
`str.splitlines()` would take for a line break. Every record is validated against `contract.ResultRecord`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from evaluator.atomic import write_text_atomic
from evaluator.contract import (
    MANIFEST_SCHEMA,
    MANIFEST_SCHEMAS,
    RESULT_SCHEMA,
    RESULT_SCHEMAS,
    Manifest,
    ResultRecord,
    first_error,
    to_json,
)

RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"


def shard_dir(out: Path, index: int) -> Path:
    return out / f"shard-{index:05d}"


@dataclass
class LineProblem:
    """A bad line: `truncated_line` (a write cut off), `corrupt_line` (not JSON or not a record) or
    `invalid_record` (a record whose `field` has the wrong shape)."""

    line: int
    message: str
    kind: str = "corrupt_line"
    field: str | None = None


@dataclass
class ShardFile:
    """What is on disk for one shard: its records (in order), bad lines, and whether the tail was torn."""

    records: list[ResultRecord] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)
    torn_tail: bool = False
    valid_bytes: int = 0


def read_results(path: Path) -> ShardFile:
    """Parses a results file; a last line without its newline is a torn write, anything else bad is corrupt."""
    shard = ShardFile()
    for number, _offset, record in scan_results(path, shard):
        shard.records.append(record)
        shard.lines.append(number)
    return shard


def scan_results(path: Path, shard: ShardFile) -> Iterator[tuple[int, int, ResultRecord]]:
    """(line number, byte offset, record) of each valid record, read a line at a time (memory does not grow with
    the file); bad lines, the torn tail and the valid prefix's length go into `shard` (whose `records` stay
    empty: the aggregate keeps only where each record is)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        offset = 0
        number = 0
        for raw in handle:
            number += 1
            start, offset = offset, offset + len(raw)
            if not raw.endswith(b"\n"):
                shard.torn_tail = True
                shard.problems.append(
                    LineProblem(number, "truncated last line (no newline): a write was cut off", "truncated_line")
                )
                break
            if not raw.strip():
                shard.valid_bytes = offset
                continue
            try:  # the common case in one step (pydantic-core parses the JSON); any doubt takes the path below
                fast = ResultRecord.model_validate_json(raw)
            except ValueError:
                pass
            else:
                shard.valid_bytes = offset
                yield number, start, fast
                continue
            try:
                content = json.loads(raw)
            except ValueError as exc:
                shard.problems.append(LineProblem(number, f"corrupt line: {exc}"))
                continue
            if not isinstance(content, dict) or content.get("schema") not in RESULT_SCHEMAS:
                shard.problems.append(LineProblem(number, f"not an evaluator result record (schema {RESULT_SCHEMA!r})"))
                continue
            try:
                record = ResultRecord.model_validate(content)
            except ValidationError as exc:
                where, message = first_error(exc)
                shard.problems.append(
                    LineProblem(number, f"invalid result record: field '{where}': {message}", "invalid_record", where)
                )
                continue
            shard.valid_bytes = offset
            yield number, start, record


class ResultWriter:
    """Appends records to a shard's results file, one flushed line each."""

    def __init__(self, path: Path, *, lazily: bool = False) -> None:
        """`lazily`: the file is opened (created) by the first record, so a shard that fails before any unit ended
        touches no file."""
        self.path = path
        self.lazily = lazily
        self._handle: TextIO | None = None

    def __enter__(self) -> ResultWriter:
        if not self.lazily:
            self._open()
        return self

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def write(self, record: ResultRecord) -> None:
        if self._handle is None:
            self._open()
        assert self._handle is not None
        # JSON escapes \n inside strings, so a record is always exactly one line.
        self._handle.write(to_json(record, indent=None) + "\n")
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


def write_manifest(path: Path, manifest: Manifest) -> None:
    write_text_atomic(path, to_json(manifest) + "\n")


@dataclass
class ManifestRead:
    """A shard's manifest, or why there is none: `missing`, or `problem` naming the field."""

    manifest: Manifest | None = None
    missing: bool = False
    problem: str | None = None
    field: str | None = None


def read_manifest(path: Path) -> ManifestRead:
    """Reads and validates a manifest; damage is described (file, field), never raised."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ManifestRead(missing=True)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return ManifestRead(problem=f"unreadable manifest ({exc})")
    if not isinstance(content, dict) or content.get("schema") not in MANIFEST_SCHEMAS:
        return ManifestRead(problem=f"not an evaluator manifest (schema {MANIFEST_SCHEMA!r})", field="schema")
    try:
        return ManifestRead(manifest=Manifest.model_validate(content))
    except ValidationError as exc:
        where, message = first_error(exc)
        return ManifestRead(problem=f"invalid manifest: field '{where}': {message}", field=where)


def shard_dirs(out: Path) -> Iterator[tuple[int, Path]]:
    """Every `shard-NNNNN` folder under `out`, in index order."""
    found = []
    for child in out.iterdir():
        name = child.name
        if child.is_dir() and name.startswith("shard-") and name[6:].isdigit():
            found.append((int(name[6:]), child))
    yield from sorted(found)
