"""What site.yml and ci_stack left on the converged instance, checked from the outside with testinfra.

Everything here ran for real inside a privileged systemd container: Debian's docker.io daemon, docker compose,
the stand-in images. Only the GPU and the vendors' repositories are absent (see ansible/README.md).
"""

from __future__ import annotations

import json

import pytest

PROJECT = "/opt/ai-eval-factory/ci-stack"
SECRETS = {"molecule-admin-password-1234", "molecule-frp-token-5678"}


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


@pytest.mark.parametrize("service", ["jenkins", "portainer", "frpc"])
def test_compose_services_running(host, service):
    state = host.check_output(
        "docker inspect -f '{{.State.Status}}' $(docker ps -aq --filter label=com.docker.compose.service=%s)",
        service,
    )
    assert state == "running"


def test_jenkins_runs_containers_through_the_mounted_socket(host):
    jenkins = host.check_output("docker ps -q --filter label=com.docker.compose.service=jenkins")
    # uid 1000 like the real image: only the socket's group id, added at run time, lets it in.
    assert host.check_output("docker exec %s id -u", jenkins) == "1000"
    socket_gid = host.file("/var/run/docker.sock").gid
    assert str(socket_gid) in host.check_output("docker exec %s id -G", jenkins).split()
    run = host.run("docker exec %s docker run --rm molecule-standin/base:test echo via-socket", jenkins)
    assert run.rc == 0, run.stderr
    assert run.stdout.strip() == "via-socket"


def test_ports_bound_to_loopback_only(host):
    portainer = host.check_output("docker ps -q --filter label=com.docker.compose.service=portainer")
    ports = json.loads(host.check_output("docker inspect -f '{{json .NetworkSettings.Ports}}' %s", portainer))
    assert [b["HostIp"] for b in ports["9443/tcp"]] == ["127.0.0.1"]
    assert host.socket("tcp://127.0.0.1:9443").is_listening
    assert not host.socket("tcp://0.0.0.0:9443").is_listening


def test_secrets_are_private_files_not_in_the_compose_file(host):
    for name in ("portainer_admin_password", "frpc.toml"):
        secret = host.file(f"{PROJECT}/secrets/{name}")
        assert secret.mode == 0o600 and secret.user == "root"
    assert host.file(f"{PROJECT}/secrets").mode == 0o700
    compose = host.file(f"{PROJECT}/compose.yml").content_string
    assert not any(value in compose for value in SECRETS)
    assert "DOCKER_SOCKET_GID" in compose  # the gid is not baked in


def test_secrets_never_logged_by_the_converge(host):
    # The verifier cannot read Ansible's output; the static no_log check lives in tests/ansible/test_no_log.py.
    # Here: nothing secret leaked into the containers' environment or labels.
    for service in ("jenkins", "portainer", "frpc"):
        cid = host.check_output("docker ps -q --filter label=com.docker.compose.service=%s", service)
        config = host.check_output("docker inspect -f '{{json .Config}}' %s", cid)
        assert not any(value in config for value in SECRETS)
