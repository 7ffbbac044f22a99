"""ansible/ passes ansible-lint's production profile and yamllint: the same commands an admin would run."""

from __future__ import annotations

import subprocess

import pytest
from ansible_harness import ANSIBLE_DIR, REPO, tool, tool_env


def _tool(name: str) -> str:
    path = tool(name)
    if path is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[ansible]'")
    return path


def test_yamllint_clean():
    result = subprocess.run(
        [_tool("yamllint"), "--strict", "-f", "parsable", "."],
        cwd=ANSIBLE_DIR,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile():
    result = subprocess.run(
        [_tool("ansible-lint"), "--profile", "production", "--offline", "--nocolor"],
        cwd=ANSIBLE_DIR,
        # The repository's one Ansible configuration (roles_path), as ansible-playbook reads it from the root.
        env=tool_env(ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
