"""Puts pulumi/ (the `factory` package, the policy rules) and this folder's helpers on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parents[1] / "pulumi", HERE.parents[1] / "pulumi" / "policy"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from pulumi_harness import write_suite  # noqa: E402


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    return write_suite(tmp_path)
