"""What site.yml left on the converged instance, checked from the outside with testinfra (ci_stack: test_ci_stack.py).

Everything here ran for real inside a privileged systemd container: Debian's docker.io daemon, docker compose,
the stand-in images. Only the GPU and the vendors' repositories are absent (see ansible/README.md).
"""

from __future__ import annotations

import json


def test_wsl_conf_enables_systemd(host):
    conf = host.file("/etc/wsl.conf")
    assert conf.exists and conf.mode == 0o644
    assert "[boot]\nsystemd=true" in conf.content_string
    assert "appendWindowsPath=false" in conf.content_string


def test_docker_service_active_and_enabled(host):
    docker = host.service("docker")
    assert docker.is_running
    assert docker.is_enabled


def test_daemon_json_merged_not_overwritten(host):
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    # Written by prepare.yml as nvidia-ctk would have: docker_engine must keep it.
    assert daemon["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    # docker_engine's own keys, merged in.
    assert daemon["default-cgroupns-mode"] == "private"
    assert daemon["log-opts"]["max-size"] == "10m"
    assert "nvidia" in host.check_output("docker info --format '{{json .Runtimes}}'")


def test_admin_user_in_docker_group_can_use_docker(host):
    assert "docker" in host.user("factory-dev").groups
    assert host.run("sudo -u factory-dev docker info --format '{{.ServerVersion}}'").rc == 0


def test_nvidia_toolkit_skipped_without_gpu(host):
    # No GPU here: the role must stop before touching apt (its repository is unreachable anyway).
    assert not host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").exists
    assert not host.package("nvidia-container-toolkit").is_installed


# The CI stack's checks live in test_ci_stack.py.
