"""The site preflight: every input checked before anything is installed, every problem named at once (issue 19).

`ansible-playbook ansible/site.yml --tags preflight` runs against this machine through a temporary inventory
(local connection, this Python). The preflight is read-only; what it reads is pointed into tmp_path: the CI
stack's project folder (its kept secret files), `ip route` (a stand-in printing the routes of a WSL NAT network),
the WSL markers, the Windows driver's nvidia-smi and `.wslconfig`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from ansible_harness import ANSIBLE_DIR, REPO, tool, tool_env

VALID_INPUTS = {
    "ci_stack_release_repo_url": "https://github.com/acme/ai-eval-factory.git",
    "ci_stack_frpc_server_addr": "frps.example.test",
    "ci_stack_frpc_server_name": "frps.example.test",
    "ci_stack_frpc_webhook_domain": "hooks.example.test",
    "ci_stack_frpc_ca_cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
}
SECRET_FILES = {
    "portainer_admin_password": "portainer-admin-pass-1234",
    "frp-token": "frp-token-5678",
    "jenkins-admin-password": "jenkins-admin-pass-9012",
    "github-token": "ghp_token3456",
    "release-webhook-secret": "6d6f6c6563756c652d776562686f6f6b2d7365637265742d3738393031323334\n",
}


def preflight(tmp_path: Path, variables: dict[str, object], *extra: str) -> subprocess.CompletedProcess[str]:
    """site.yml's preflight against this machine with an inventory whose group_vars/all holds `variables`."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become_method": "su"}
    (inventory / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"factory_hosts": {"hosts": {"localhost": host}}}}})
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    ip = bin_dir / "ip"
    if not ip.exists():
        ip.write_text(
            "#!/bin/sh\n# STAND-IN ip: a host whose only routes are loopback's\necho 'local 127.0.0.0/8 dev lo'\n"
        )
        ip.chmod(0o755)
    defaults = {
        "ci_stack_project_dir": str(tmp_path / "ci-stack"),
        "site_ip_command": str(ip),
        "site_wsl_interop_path": str(tmp_path / "no-WSLInterop"),
        "site_kernel_release": "6.1.0-40-amd64",
        "minikube_cpus": 1,
        "minikube_memory": "2g",
    }
    (inventory / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump({**defaults, **variables}))
    command = tool("ansible-playbook")
    assert command
    env = tool_env(ANSIBLE_LOCALHOST_WARNING="0")
    for name in (
        "PORTAINER_ADMIN_PASSWORD",
        "FRP_TOKEN",
        "JENKINS_ADMIN_PASSWORD",
        "GITHUB_TOKEN",
        "RELEASE_WEBHOOK_SECRET",
    ):
        env.pop(name, None)  # a new shell: no secret in the environment
    return subprocess.run(
        [command, "-i", str(inventory), str(ANSIBLE_DIR / "site.yml"), "--tags", "preflight", *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def flat(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + result.stderr).split())


def test_untouched_inventory_stops_before_anything_naming_every_missing_input(tmp_path):
    result = preflight(tmp_path, {})
    assert result.returncode != 0
    text = flat(result)
    assert "Preflight: nothing was installed or changed" in text, text[-3000:]
    for name in (
        "ci_stack_release_repo_url",
        "ci_stack_frpc_server_addr",
        "ci_stack_jenkins_admin_password",
        "ci_stack_github_token",
        "ci_stack_webhook_secret",
    ):
        assert name in text, name
    assert not (tmp_path / "ci-stack").exists()


def test_kept_secret_files_satisfy_the_preflight_from_a_new_shell(tmp_path):
    secrets = tmp_path / "ci-stack" / "secrets"
    secrets.mkdir(parents=True)
    for name, value in SECRET_FILES.items():
        (secrets / name).write_text(value)
    result = preflight(tmp_path, VALID_INPUTS)
    assert result.returncode == 0, flat(result)[-3000:]
    assert "kept from" in flat(result)  # says which secrets come from the files already there
    (secrets / "github-token").unlink()
    missing = preflight(tmp_path, VALID_INPUTS)
    assert missing.returncode != 0 and "ci_stack_github_token" in flat(missing)


def test_a_ci_network_that_collides_with_a_route_is_refused(tmp_path):
    ip = tmp_path / "bin" / "ip"
    ip.parent.mkdir(parents=True)
    # WSL's NAT network (a /20 from 172.16.0.0/12) covering the stack's default 172.30.240.0/24.
    ip.write_text("#!/bin/sh\necho '172.30.240.0/20 dev eth0 proto kernel scope link src 172.30.245.3'\n")
    ip.chmod(0o755)
    secrets = tmp_path / "ci-stack" / "secrets"
    secrets.mkdir(parents=True)
    for name, value in SECRET_FILES.items():
        (secrets / name).write_text(value)
    result = preflight(tmp_path, VALID_INPUTS)
    assert result.returncode != 0
    text = flat(result)
    assert "ci_stack_network" in text and "172.30.240.0/20" in text and "eth0" in text


def test_wsl1_an_old_windows_driver_and_the_wslconfig_cap_are_named_together(tmp_path):
    smi = tmp_path / "wsl-lib" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\ncase \"$*\" in *driver_version*) echo '470.05';; *) echo 'GPU 0: STAND-IN';; esac\n")
    smi.chmod(0o755)
    wslconfig = tmp_path / ".wslconfig"
    wslconfig.write_text("[wsl2]\nmemory=4GB\nprocessors=2\n")
    result = preflight(
        tmp_path,
        {
            "site_kernel_release": "4.4.0-19041-Microsoft",
            "site_windows_nvidia_smi": str(smi),
            "site_wslconfig_path": str(wslconfig),
            "minikube_memory": "400g",
        },
    )
    assert result.returncode != 0
    text = flat(result)
    assert "WSL 1" in text and "wsl --set-version" in text
    assert "470.05" in text
    assert "memory=4GB" in text  # the .wslconfig line that caps the VM


def test_portainer_older_than_the_docker_api_floor_is_refused(tmp_path):
    # Portainer is opt-in (it holds the Docker socket): the check is for an admin who turned it on.
    result = preflight(
        tmp_path, {"ci_stack_portainer_enabled": True, "ci_stack_portainer_image": "portainer/portainer-ce:2.21.5"}
    )
    assert result.returncode != 0
    assert "2.33.5" in flat(result) and "1.44" in flat(result)


def test_ubuntu_26_04_is_a_supported_distribution():
    defaults = yaml.safe_load((ANSIBLE_DIR / "roles" / "site" / "defaults" / "main.yml").read_text())
    assert {"22", "24", "26"} <= set(defaults["site_supported_os"]["Ubuntu"])


def test_the_k3s_engine_has_its_inputs_checked_instead_of_minikubes(tmp_path):
    result = preflight(
        tmp_path,
        {
            **VALID_INPUTS,
            "site_kubernetes_engine": "k3s",
            "k3s_version": "v1.32.5+k3s1",  # older than the eval Job's backoffLimitPerIndex
            "minikube_memory": "4096g",  # minikube does not run: its node size is no problem
        },
    )
    assert result.returncode != 0
    text = flat(result)
    assert "Preflight: nothing was installed or changed" in text
    assert "k3s_version must be a k3s release of Kubernetes 1.33 or newer" in text
    assert "minikube_memory=4096g" not in text
    assert "minikube=False k3s=True" in text
