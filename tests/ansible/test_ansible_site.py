"""The admin's entry point: `ansible-playbook ansible/site.yml` exactly as the README writes it, from the root.

The commands run for real against this machine as far as they can without changing it: the README's line with
--list-hosts and --syntax-check (the root ansible.cfg must name the inventory), a run without an inventory (must
fail loudly, not "skip" and exit 0), and the preflight against an inventory whose group_vars/all overrides the
site defaults (the override must win). Molecule runs the whole play.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_harness import ANSIBLE_DIR, REPO, tool, tool_env


def readme_commands() -> list[str]:
    """The ansible-playbook lines of ansible/README.md's first code block (the admin's instructions)."""
    block = re.search(r"```bash\n(.*?)```", (ANSIBLE_DIR / "README.md").read_text(), re.S)
    assert block, "ansible/README.md has no bash block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.startswith("ansible-playbook")]


def run_from_root(argv: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    command = tool(argv[0])
    assert command, "ansible-playbook is not installed: pip install -e '.[ansible]'"
    env = tool_env(ANSIBLE_LOCALHOST_WARNING="0")
    env.pop("ANSIBLE_CONFIG", None)  # whatever Ansible finds by itself, as for the admin
    return subprocess.run([command, *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_readme_runs_from_the_repository_root():
    local = [c for c in readme_commands() if " -i " not in c]
    assert local == ["ansible-playbook -K ansible/site.yml"], "the README's local command changed: update this test"
    remote = [c for c in readme_commands() if " -i " in c]
    assert remote == ["ansible-playbook -i ansible/inventories/remote/hosts.yml ansible/site.yml"]


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_matches_the_factory_hosts(command):
    # Exactly the README's line; --list-hosts stops before any connection or password prompt (-K).
    listed = run_from_root([*shlex.split(command), "--list-hosts"])
    assert listed.returncode == 0, listed.stdout + listed.stderr
    play = listed.stdout.split("AI evaluation factory host")[1]
    hosts = re.search(r"hosts \((\d+)\):\n((?:\s+\S+\n?)*)", play)
    assert hosts and int(hosts.group(1)) >= 1, listed.stdout
    expected = "gpu-server" if " -i " in command else "localhost"
    assert hosts.group(2).split() == [expected]
    syntax = run_from_root([*shlex.split(command), "--syntax-check"])
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr


def test_without_an_inventory_the_play_stops_loudly(tmp_path):
    # From a folder without ansible.cfg Ansible finds no inventory: it used to print "skipping: no hosts matched"
    # and exit 0 with nothing installed.
    result = run_from_root(["ansible-playbook", str(ANSIBLE_DIR / "site.yml")], cwd=tmp_path)
    assert result.returncode != 0
    assert "No host is in the factory_hosts group" in result.stdout


def test_an_inventory_group_vars_all_override_wins(tmp_path):
    # group_vars/all/main.yml in an inventory is where admins put site settings: it must beat the site defaults.
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "factory_hosts": {
                            "hosts": {
                                "localhost": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": sys.executable,
                                }
                            }
                        }
                    }
                }
            }
        )
    )
    (inventory / "group_vars" / "all" / "main.yml").write_text(
        # ci_stack off too: its inputs would be missing, and the preflight (rightly) stops on them.
        yaml.safe_dump(
            {
                "site_wsl_enabled": False,
                "site_minikube_enabled": False,
                "site_ci_stack_enabled": False,
                "site_users": ["inventory-admin"],
            }
        )
    )
    # Only the preflight (read-only) runs: it reports the settings in force after every override.
    result = run_from_root(["ansible-playbook", "-i", str(inventory), "ansible/site.yml", "--tags", "preflight"])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    settings = re.search(r"settings: (.*?)\.'", result.stdout, re.S)
    assert settings, result.stdout[-4000:]
    text = re.sub(r"\s+", " ", settings.group(1))
    assert "wsl=False" in text and "minikube=False" in text and "docker_engine=True" in text
    assert "docker group: inventory-admin" in text and "minikube user: inventory-admin" in text


# Features the roles use, and the ansible-core release that brought each.
FEATURES = {"ansible.builtin.meta: end_role": ("2.18", re.compile(r"ansible\.builtin\.meta:\s*end_role"))}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_minimum_ansible_core_covers_what_the_roles_use():
    needed = {}
    for task_file in ANSIBLE_DIR.glob("roles/*/tasks/*.yml"):
        for feature, (version, pattern) in FEATURES.items():
            if pattern.search(task_file.read_text()):
                role = task_file.parts[-3]
                needed[role] = max(needed.get(role, "0"), version, key=_version)
                assert feature
    assert needed, "no feature found: the table above is stale"
    site_defaults = yaml.safe_load((ANSIBLE_DIR / "roles" / "site" / "defaults" / "main.yml").read_text())
    declared = site_defaults["site_min_ansible_version"]
    for role, version in needed.items():
        assert _version(declared) >= _version(version), f"{role} needs ansible-core {version}, site.yml says {declared}"
        meta = yaml.safe_load((ANSIBLE_DIR / "roles" / role / "meta" / "main.yml").read_text())
        assert _version(meta["galaxy_info"]["min_ansible_version"]) >= _version(version), role
    # pyproject's `ansible>=N` brings ansible-core 2.(N+7): at least the declared minimum.
    pyproject = (REPO / "pyproject.toml").read_text()
    ansible_major = int(re.search(r'"ansible>=(\d+)', pyproject).group(1))
    assert _version(f"2.{ansible_major + 7}") >= _version(declared)


def test_no_playbook_group_vars_shadow_inventories():
    # Playbook-adjacent group_vars/all beat every inventory's group_vars/all: site defaults live in roles/site.
    assert not (ANSIBLE_DIR / "group_vars").exists()
    assert os.path.exists(REPO / "ansible.cfg")
