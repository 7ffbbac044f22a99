"""Paths and the subprocess environment shared by the Ansible tests (no fixtures: plain values)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
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


def play_locally(
    workdir: Path, playbook: str, variables: dict[str, object], *extra: str, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Run a playbook against this machine (local connection, this Python) with the repository's roles.

    become goes through su: root needs no password for it, and this machine has no sudo.
    """
    command = tool("ansible-playbook")
    assert command, "ansible-playbook is not installed: pip install -e '.[ansible]'"
    (workdir / "playbook.yml").write_text(playbook)
    (workdir / "vars.json").write_text(
        json.dumps({"ansible_python_interpreter": sys.executable, "ansible_become_method": "su", **variables})
    )
    return subprocess.run(
        [command, "-i", "localhost,", "-c", "local", "-e", f"@{workdir / 'vars.json'}", *extra, "playbook.yml"],
        cwd=workdir,
        env=tool_env(ANSIBLE_ROLES_PATH=str(ANSIBLE_DIR / "roles"), ANSIBLE_LOCALHOST_WARNING="0"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def recap(output: str, host: str = "localhost") -> dict[str, int]:
    """The PLAY RECAP counters of one host."""
    match = re.search(rf"^{re.escape(host)}\s+:\s+(.*)$", output, re.M)
    assert match, output[-4000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}
