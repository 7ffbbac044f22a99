"""The ci_stack role's compose project, rendered by Ansible itself (tests/pipeline/render_ci_stack.yml: the
role's defaults, its tasks/derive.yml, its templates) into a folder, and the seam checks the tests apply to it.

Nothing here starts a container: Molecule converges the whole role for real (ansible/molecule/default).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.pipeline import frp_template
from tests.pipeline.conftest import REPO

ROLE_DIR = REPO / "ansible" / "roles" / "ci_stack"
PLAYBOOK = Path(__file__).with_name("render_ci_stack.yml")
VALIDATE_PLAYBOOK = Path(__file__).with_name("validate_ci_stack.yml")
# Fake secrets of the rendering: they must never appear in what the role renders (only file references do).
SECRET_VALUES = {
    "ci_stack_portainer_admin_password": "render-portainer-password-1234",
    "ci_stack_frpc_token": "render-frp-token-5678",
    "ci_stack_jenkins_admin_password": "render-jenkins-admin-9012",
    "ci_stack_github_token": "github_pat_render0123456789",
    "ci_stack_webhook_secret": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
}
BASE_VARS: dict[str, Any] = {
    **SECRET_VALUES,
    "ci_stack_frpc_server_addr": "vps.example.org",
    "ci_stack_frpc_server_name": "frps.internal",
    "ci_stack_frpc_webhook_domain": "hooks.example.org",
    "ci_stack_frpc_ca_cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "ci_stack_release_repo_url": "https://github.com/acme/ai-eval-factory.git",
    # Read from the generated key pair on a host; fixed here (a public key).
    "ci_stack_agent_authorized_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRenderTestKeyOnlyxxxxxxxxxxxxxxxxxxxxxxx",
}


@dataclass
class RenderedStack:
    folder: Path
    compose: dict[str, Any]
    compose_text: str
    derived: dict[str, Any]

    def service(self, name: str) -> dict[str, Any]:
        services = self.compose["services"]
        assert name in services, f"compose has no service {name!r}: {sorted(services)}"
        return dict(services[name])

    def mounts(self, service: str) -> dict[str, str]:
        """Container path -> host path (relative to the project folder) of a service's bind mounts."""
        found = {}
        for volume in self.service(service).get("volumes", []):
            parts = volume.split(":")
            if parts[0].startswith(("/", "./")):
                found[parts[1]] = parts[0]
        return found

    def secrets(self, service: str) -> dict[str, str]:
        """/run/secrets/<name> -> host file of each compose secret the service mounts."""
        top = self.compose.get("secrets", {})
        return {f"/run/secrets/{name}": top[name]["file"] for name in self.service(service).get("secrets", [])}

    def environment(self, service: str) -> dict[str, str]:
        env = self.service(service).get("environment", {})
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        return {str(k): str(v) for k, v in env.items()}

    def command(self, service: str) -> list[str]:
        command = self.service(service).get("command", [])
        assert isinstance(command, list), f"{service}: command must be a list (no shell parsing)"
        return [str(c) for c in command]


def option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def run_playbook(folder: Path, playbook: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    """ansible-playbook of `playbook` on localhost with the base variables and `overrides`."""
    folder.mkdir(parents=True, exist_ok=True)
    variables = BASE_VARS | overrides | {
        "render_out": str(folder), "render_role_dir": str(ROLE_DIR), "ansible_python_interpreter": sys.executable,
    }  # fmt: skip
    (folder / "vars.json").write_text(json.dumps(variables))
    ansible = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    (folder / "ansible.cfg").write_text(f"[defaults]\nroles_path = {ROLE_DIR.parent}\nretry_files_enabled = false\n")
    env = dict(os.environ) | {
        "ANSIBLE_CONFIG": str(folder / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }  # fmt: skip
    return subprocess.run(
        [ansible, "-i", "localhost,", str(playbook), "-e", f"@{folder / 'vars.json'}"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def validate(folder: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    """The role's derive.yml + validate.yml (what it checks before touching the host) on these inputs."""
    return run_playbook(folder, VALIDATE_PLAYBOOK, **overrides)


def render(folder: Path, **overrides: Any) -> RenderedStack:
    result = run_playbook(folder, PLAYBOOK, **overrides)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    text = (folder / "compose.yml").read_text()
    return RenderedStack(folder, yaml.safe_load(text), text, json.loads((folder / "derived.json").read_text()))


def frpc_seam_problems(frpc_text: str, stack: RenderedStack) -> list[str]:
    """Every way the repository's frp/frpc.toml and the compose stack that runs it can disagree.

    The stack gives frpc its environment, its token file, its CA file and the receiver it forwards to; the file
    names where it expects each of them. An empty list means they agree."""
    problems: list[str] = []
    env = stack.environment("frpc")
    missing_env = sorted(frp_template.env_names(frpc_text) - set(env))
    if missing_env:
        problems.append(f"frpc.toml reads {missing_env} but the frpc service does not set them")
    try:
        config = tomllib.loads(frp_template.render(frpc_text, env))
    except (frp_template.TemplateError, tomllib.TOMLDecodeError) as exc:
        return [*problems, f"frpc.toml does not render with the stack's environment: {exc}"]
    files = stack.mounts("frpc") | stack.secrets("frpc")
    token_path = config.get("auth", {}).get("tokenSource", {}).get("file", {}).get("path")
    if token_path not in stack.secrets("frpc"):
        problems.append(f"token file {token_path!r} is not a secret mounted into frpc")
    tls = config.get("transport", {}).get("tls", {})
    if tls.get("enable", True) is not True or tls.get("trustedCaFile") not in files:
        problems.append(f"TLS CA file {tls.get('trustedCaFile')!r} is not mounted into frpc (or TLS is off)")
    if set(config.get("auth", {}).get("additionalScopes", [])) != {"HeartBeats", "NewWorkConns"}:
        problems.append("auth.additionalScopes differs from what frps.toml requires")
    receiver = stack.command("receiver")
    proxies = config.get("proxies", [])
    wanted = {
        "type": "http",
        "localIP": option(receiver, "--host"),
        "localPort": int(option(receiver, "--port")),
        "locations": [option(receiver, "--path")],
    }
    if len(proxies) != 1 or any(proxies[0].get(k) != v for k, v in wanted.items()):
        problems.append(f"frpc must route exactly one http path to the receiver {wanted}, got {proxies}")
    if "network_mode" in stack.service("frpc"):
        problems.append("frpc must have its own network namespace (a receiver restart must not cut the tunnel)")
    receiver_networks = set(stack.service("receiver").get("networks", {}))
    if not receiver_networks & set(stack.service("frpc").get("networks", {})):
        problems.append("frpc is on no network of the receiver: it cannot reach its fixed address")
    command = stack.command("frpc")
    if command[:1] != ["-c"] or command[1] not in stack.mounts("frpc"):
        problems.append(f"frpc does not read the mounted configuration: {command}")
    return problems
