"""A shard's response cache: every successful chat completion, keyed by its request, kept beside the results.

Re-scoring is what it is for: a run re-done into the same folder with another threshold, an added metric or a
new judge setting re-scores the recorded answers, and every judge request it sends that was sent before (the
same model, messages, sampling settings and response format) is answered from here instead of the server. So a
changed threshold calls nobody, and an added metric calls the judge only for what that metric asks.

The key is the SHA-256 of the request body as JSON with sorted keys: the body is everything the server answers
(the URL and the key are not: environment variables move them, as they move nothing in the run's identity). The
file is `shard-NNNNN/responses.jsonl`, one `{"key", "response"}` line per response (the server's JSON as it
came, so any reader of a completion, text or logprobs, gets what the server said). It is a cache, not a
result: a damaged line is skipped, a torn last line cut off, and deleting the file only costs calls again.
`evaluator run --no-cache` neither reads nor writes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger("evaluator.run")

CACHE_FILE = "responses.jsonl"


# One encoder for every call: `json.dumps` with options builds a new one each time.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(body: dict[str, Any]) -> bytes:
    """A request body as canonical JSON (sorted keys, no whitespace, UTF-8): what the client sends, and what the
    cache key hashes, so each call serialises its body once."""
    return _CANONICAL.encode(body).encode()


def key_of(canonical: bytes) -> str:
    """The cache key of a body already in canonical JSON."""
    return hashlib.sha256(canonical).hexdigest()


def request_key(body: dict[str, Any]) -> str:
    """What identifies a request: its body, canonical JSON (sorted keys, no whitespace)."""
    return key_of(canonical_json(body))


class ResponseCache:
    """The responses recorded in one shard's cache file; `open()` before use, `close()` after."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._responses: dict[str, bytes] = {}  # what earlier runs recorded: served
        self._written: set[str] = set()  # what this run recorded: kept for the next run
        self._handle: TextIO | None = None
        self.hits = 0
        self.stored = 0

    def open(self) -> ResponseCache:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._load()
        self._handle = self.path.open("a", encoding="utf-8")
        return self

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def __len__(self) -> int:
        return len(self._responses)

    def get(self, key: str) -> bytes | None:
        """A response recorded by an EARLIER run of the shard. What this run records is not served back to it:
        two identical requests of one run (two cases alike, a judge at temperature > 0) each reach the server,
        exactly as without a cache, so a first run behaves the same with or without one."""
        found = self._responses.get(key)
        if found is not None:
            self.hits += 1
        return found

    def put(self, key: str, raw: bytes, response: Any = None) -> None:
        """Records a successful response (the server's JSON body; `response`: already parsed) under its request's
        key, for later runs. A body already parsed as one JSON object on one line is written as the server sent it
        (serialising it again cost more per call than the rest of the cache); anything else is re-serialised."""
        if key in self._responses or key in self._written or self._handle is None:
            return
        line = _raw_line(key, raw) if isinstance(response, dict) else None
        if line is None:
            if response is None:
                try:
                    response = json.loads(raw)
                except ValueError:
                    return
            line = json.dumps({"key": key, "response": response}, ensure_ascii=False) + "\n"
        self._written.add(key)
        self._handle.write(line)
        self._handle.flush()
        self.stored += 1

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        valid = 0
        for raw in data.split(b"\n")[:-1]:  # the part after the last newline is a torn write (or nothing)
            valid += len(raw) + 1
            try:
                entry = json.loads(raw)
                key, response = entry["key"], entry["response"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(key, str) and isinstance(response, dict):
                self._responses[key] = json.dumps(response).encode()
        if valid < len(data):
            log.warning("%s: cutting a torn last line left by a killed run", self.path)
            with self.path.open("r+b") as handle:
                handle.truncate(valid)


def _raw_line(key: str, raw: bytes) -> str | None:
    """The cache line of a response body parsed as a JSON object, with the body as the server sent it; None when
    it is not UTF-8 on one line (then it is serialised again)."""
    if b"\n" in raw or b"\r" in raw:
        return None
    try:
        text = raw.decode("utf-8").strip().lstrip("\ufeff")
    except UnicodeDecodeError:
        return None
    return f'{{"key": "{key}", "response": {text}}}\n'
