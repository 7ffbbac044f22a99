"""The minikube role up to its network boundary, on this machine with a local connection.

minikube's and kubectl's real downloads (GitHub, dl.k8s.io) and `minikube start --gpus=all` cannot run here (no
internet, no GPU). What runs for real: the role's input validation, get_url's SHA-256 verification and
installation from a file:// mirror (both digest forms: a pinned hex digest and a published .sha256 file),
idempotence of the install, and the whole role in check mode. The mirrored "binaries" are small stand-in files:
the role only downloads, verifies and installs them, it does not run them here.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_harness import ANSIBLE_DIR, tool, tool_env

PLAYBOOK = """\
- name: Minikube role against this machine
  hosts: localhost
  gather_facts: true
  gather_subset: [min]
  roles:
    - role: minikube
"""


@pytest.fixture
def mirror(tmp_path: Path) -> dict[str, object]:
    """A file:// mirror with stand-in binaries, and the role variables that point at it."""
    mirror_dir = tmp_path / "mirror"
    mirror_dir.mkdir()
    minikube = mirror_dir / "minikube-linux-amd64"
    minikube.write_bytes(b"#!/bin/sh\necho 'minikube version: v1.37.0 (stand-in)'\n")
    kubectl = mirror_dir / "kubectl"
    kubectl.write_bytes(b"#!/bin/sh\necho 'kubectl stand-in'\n")
    # minikube publishes a .sha256 file holding only the digest, like the real release.
    (mirror_dir / "minikube-linux-amd64.sha256").write_text(hashlib.sha256(minikube.read_bytes()).hexdigest())
    (tmp_path / "bin").mkdir()
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    return {
        "minikube_download_url": minikube.as_uri(),
        "minikube_sha256": minikube.as_uri() + ".sha256",
        "minikube_kubectl_download_url": kubectl.as_uri(),
        "minikube_kubectl_sha256": hashlib.sha256(kubectl.read_bytes()).hexdigest(),
        "minikube_bin_dir": str(tmp_path / "bin"),
        "minikube_model_cache_dir": str(tmp_path / "model-cache"),
        "minikube_sysctl_file": str(tmp_path / "sysctl.d" / "90-minikube.conf"),
        # Writing net.core.bpf_jit_harden would change this machine's kernel: only in check mode below.
        "minikube_manage_sysctl": False,
        "minikube_start": False,
        "minikube_user": "root",
        "ansible_python_interpreter": sys.executable,
    }


def play(tmp_path: Path, variables: dict[str, object], *extra: str) -> subprocess.CompletedProcess[str]:
    playbook = tool("ansible-playbook")
    assert playbook, "ansible-playbook is not installed: pip install -e '.[ansible]'"
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    return subprocess.run(
        [playbook, "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'vars.json'}", *extra, "playbook.yml"],
        cwd=tmp_path,
        env=tool_env(ANSIBLE_ROLES_PATH=str(ANSIBLE_DIR / "roles"), ANSIBLE_LOCALHOST_WARNING="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )


def recap(output: str) -> dict[str, int]:
    match = re.search(r"localhost\s+:\s+(.*)", output)
    assert match, output
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def test_install_verifies_checksums_and_is_idempotent(tmp_path, mirror):
    first = play(tmp_path, mirror)
    assert first.returncode == 0, first.stdout[-4000:]
    assert recap(first.stdout)["changed"] >= 3  # two binaries and the model cache
    for name, source in (("minikube", "minikube_download_url"), ("kubectl", "minikube_kubectl_download_url")):
        installed = tmp_path / "bin" / name
        assert installed.stat().st_mode & 0o777 == 0o755
        assert installed.read_bytes() == Path(str(mirror[source]).removeprefix("file://")).read_bytes()
    assert (tmp_path / "model-cache").is_dir()

    second = play(tmp_path, mirror)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)["changed"] == 0


def test_a_wrong_digest_refuses_the_download(tmp_path, mirror):
    result = play(tmp_path, {**mirror, "minikube_kubectl_sha256": "0" * 64})
    assert result.returncode != 0
    assert "did not match" in result.stdout
    assert not (tmp_path / "bin" / "kubectl").exists()


def test_kubernetes_older_than_1_33_is_refused_before_anything_changes(tmp_path, mirror):
    result = play(tmp_path, {**mirror, "minikube_kubernetes_version": "v1.32.0"})
    assert result.returncode != 0
    assert "backoffLimitPerIndex" in result.stdout
    assert not any((tmp_path / "bin").iterdir())


def test_whole_role_in_check_mode_changes_nothing(tmp_path, mirror):
    variables = {**mirror, "minikube_manage_sysctl": True, "minikube_start": True}
    result = play(tmp_path, variables, "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Check mode: minikube status/start and the GPU capacity check are skipped." in result.stdout
    assert not any((tmp_path / "bin").iterdir())
    assert not (tmp_path / "sysctl.d").exists()
