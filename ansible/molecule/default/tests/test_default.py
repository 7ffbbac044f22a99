"""What site.yml left on the converged instance, checked from the outside with testinfra (ci_stack: test_ci_stack.py).

Everything here ran for real inside a privileged systemd container: apt through the signed stand-ins of Docker's
and NVIDIA's repositories (served on 127.0.0.1 inside the instance), a real dockerd (Debian's, packaged as
docker-ce), nvidia-ctk's daemon.json edit, docker compose, the stand-in images. Only a GPU is absent (see
ansible/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_wsl_conf_enables_systemd_and_nothing_else(host):
    conf = host.file("/etc/wsl.conf")
    assert conf.exists and conf.mode == 0o644
    # Minimal by default: appendWindowsPath=false would break `code .`, generateResolvConf a VPN's DNS fix.
    assert conf.content_string.split() == ["[boot]", "systemd=true"]


def test_docker_and_all_four_toolkit_packages_are_pinned_and_held(host):
    held = set(host.check_output("apt-mark showhold").split())
    toolkit = {
        "nvidia-container-toolkit",
        "nvidia-container-toolkit-base",
        "libnvidia-container-tools",
        "libnvidia-container1",
    }
    assert {"docker-ce", "docker-ce-cli", "containerd.io"} | toolkit <= held
    # The stand-in repository also offers 1.19.1-1 and a newer 1.20.1-1: the pin chose 1.20.0-1 for all four.
    for name in toolkit:
        assert host.package(name).version == "1.20.0-1", name


def test_docker_service_active_and_enabled(host):
    docker = host.service("docker")
    assert docker.is_running
    assert docker.is_enabled


def test_docker_comes_from_dockers_repository(host):
    # The stand-in repository's packages, under Docker's names; Debian's docker.io was never installed.
    for name in ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"):
        package = host.package(name)
        assert package.is_installed and "standin" in package.version, name
    assert not host.package("docker.io").is_installed
    policy = host.check_output("apt-cache policy docker-ce")
    assert "http://127.0.0.1:8765/linux/debian bookworm/stable amd64 Packages" in policy
    # A real dockerd answers (Debian's, repackaged).
    assert host.check_output("docker version --format '{{.Server.Version}}'").startswith("20.10.")


def _keyring_uids(host, path):
    return host.check_output("gpg --show-keys --with-colons %s | awk -F: '/^uid:/ {print $10}'", path)


@pytest.mark.parametrize(
    ("name", "uri", "key_owner"),
    [
        ("docker", "http://127.0.0.1:8765/linux/debian", "Docker repository STAND-IN"),
        (
            "nvidia-container-toolkit",
            "http://127.0.0.1:8765/libnvidia-container/stable/deb/$(ARCH)",
            "libnvidia-container STAND-IN",
        ),
    ],
)
def test_deb822_source_signed_by_its_own_keyring(host, name, uri, key_owner):
    source = host.file(f"/etc/apt/sources.list.d/{name}.sources").content_string
    assert f"URIs: {uri}" in source
    assert f"Signed-By: /etc/apt/keyrings/{name}.asc" in source
    # Each repository trusts only its own key (the other repository's key would not verify it).
    assert _keyring_uids(host, f"/etc/apt/keyrings/{name}.asc").startswith(key_owner)


def test_conflicting_source_files_are_gone_and_apt_works(host):
    # prepare.yml left docker.list / nvidia-container-toolkit.list with other keyrings, as a manual install does.
    for leftover in ("docker.list", "nvidia-container-toolkit.list"):
        assert not host.file(f"/etc/apt/sources.list.d/{leftover}").exists
    update = host.run("apt-get update")
    assert update.rc == 0, update.stderr
    assert "Conflicting values" not in update.stdout + update.stderr


def test_toolkit_installed_and_nvidia_ctk_is_a_stand_in(host):
    assert host.package("nvidia-container-toolkit").is_installed
    assert "STAND-IN" in host.check_output("nvidia-ctk --version")


def test_daemon_json_holds_both_owners_keys(host):
    text = host.file("/etc/docker/daemon.json").content_string
    daemon = json.loads(text)
    # Written by `nvidia-ctk runtime configure` (the role ran it: the runtime was missing)...
    assert daemon["runtimes"]["nvidia"] == {"args": [], "path": "nvidia-container-runtime"}
    # ...next to docker_engine's own keys, in nvidia-ctk's layout (4 spaces).
    assert daemon["default-cgroupns-mode"] == "private"
    assert daemon["log-opts"]["max-size"] == "10m"
    assert text.startswith('{\n    "')
    assert "nvidia" in host.check_output("docker info --format '{{json .Runtimes}}'")


def test_second_converge_did_not_restart_docker(host):
    # converge.yml logs docker's InvocationID at the end of every run (converge, idempotence, check).
    runs = host.file("/var/tmp/docker-invocations").content_string.split()
    assert len(runs) >= 2
    assert len(set(runs)) == 1, f"docker was restarted after the first converge: {runs}"


def test_admin_user_in_docker_group_can_use_docker(host):
    assert "docker" in host.user("factory-dev").groups
    assert host.run("sudo -u factory-dev docker info --format '{{.ServerVersion}}'").rc == 0


def test_doctor_reaches_docker_from_a_process_started_before_the_group_was_granted(host):
    # A local connection keeps the groups the play started with: the doctor must still see Docker as the user will
    # after logging in again (it re-runs itself through `sg docker`). setpriv --clear-groups recreates that process.
    script = (Path(__file__).resolve().parents[3] / "files" / "factory_doctor.py").read_text()
    host.run(f"cat > /tmp/factory_doctor.py <<'DOCTOR_EOF'\n{script}\nDOCTOR_EOF")
    run = host.run(
        "setpriv --reuid=factory-dev --regid=factory-dev --clear-groups /usr/bin/python3 /tmp/factory_doctor.py "
        "--only disk --min-free-gib 0"
    )
    assert "[OK  ] disk/docker: docker system df:" in run.stdout, run.stdout + run.stderr


# The CI stack's checks live in test_ci_stack.py.


def test_wsl_branch_wrote_a_cdi_spec_that_mounts_libdxcore(host):
    # On WSL2 the toolkit role generates the host's CDI spec (the minikube role's CDI path hands it to the node).
    spec = host.file("/etc/cdi/nvidia.yaml").content_string
    assert "- name: all" in spec and "path: /dev/dxg" in spec
    assert "hostPath: /usr/lib/wsl/lib/libdxcore.so" in spec
