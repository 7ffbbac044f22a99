"""Shared helpers of the release-pipeline tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = b"release-secret-for-tests"
MERGE_SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
# The clock of the tests that pass one to the verifier (2027-01-15): the payloads below were merged then.
FIXED_NOW = 1_800_000_000


def iso(when: float) -> str:
    """GitHub's timestamp format (`pull_request.merged_at`)."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def release_payload(merged_at: float = FIXED_NOW, **overrides: Any) -> dict[str, Any]:
    """A GitHub pull_request 'closed' payload, merged into `release` at `merged_at`, trimmed to the fields we
    read. Tests that run a real process (real clock) pass `merged_at=time.time()`."""
    payload: dict[str, Any] = {
        "action": "closed",
        "number": 42,
        "pull_request": {
            "number": 42,
            "merged": True,
            "merged_at": iso(merged_at),
            "merge_commit_sha": MERGE_SHA,
            "base": {"ref": "release"},
            "head": {"ref": "feature/better-prompts"},
        },
        "repository": {"full_name": "acme/ai-eval-factory"},
    }
    payload.update(overrides)
    return payload


def body_of(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook-secret"
    path.write_bytes(SECRET + b"\n")
    return path
