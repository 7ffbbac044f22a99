"""Shared helpers of the release-pipeline tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = b"release-secret-for-tests"
MERGE_SHA = "3f786850e387550fdab836ed7e6dc881de23001b"


def release_payload(**overrides: Any) -> dict[str, Any]:
    """A GitHub pull_request 'closed' payload, merged into `release`, trimmed to the fields we read."""
    payload: dict[str, Any] = {
        "action": "closed",
        "number": 42,
        "pull_request": {
            "number": 42,
            "merged": True,
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
