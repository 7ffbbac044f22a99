"""Paths and the subprocess environment shared by the Ansible tests (no fixtures: plain values)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for ansible-*/molecule subprocesses: the venv first on PATH, no colour."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOWS="1", NO_COLOR="1", PY_COLORS="0")
    env.update(extra)
    return env


def tool(name: str) -> str | None:
    """The venv's copy of a command-line tool, else the one on PATH."""
    return shutil.which(name, path=str(BIN)) or shutil.which(name)
