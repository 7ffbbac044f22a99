"""The minikube role up to its network boundary, on this machine with a local connection.

minikube's and kubectl's real downloads (GitHub, dl.k8s.io) and `minikube start --gpus=all` cannot run here (no
internet, no GPU, no nested cluster). What runs for real: the role's input validation and memory preflight,
get_url's SHA-256 verification and installation from a file:// mirror (both digest forms: a pinned hex digest
and a published .sha256 file), idempotence of the install, the model cache's ownership, and the role's start and
capacity logic, driven by the installed stand-ins: a minikube whose `status` answers Running, Stopped or "profile
not found" from a state file and whose `start` records its arguments, and a kubectl that reports the node's
nvidia.com/gpu capacity. They say they are stand-ins in their own output.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_harness import play_locally

# The cluster is a folder: `host` holds Running/Stopped (absent: no profile), `gpu` the node's capacity.
MINIKUBE_STANDIN = """#!/bin/sh
# STAND-IN minikube (ai-eval-factory tests): the cluster is the state folder @STATE@.
state=@STATE@
echo "$*" >>"$state/calls"
case "$1" in
  status)
    if [ ! -f "$state/host" ]; then
      echo '* Profile "minikube" not found. Run "minikube profile list" to view all profiles.'; exit 85
    fi
    cat "$state/host"; [ "$(cat "$state/host")" = Running ] || exit 7 ;;
  start) echo Running >"$state/host"; echo "Done! (minikube STAND-IN, no cluster)" ;;
  delete) rm -f "$state/host" ;;
  *) echo "minikube version: v1.37.0 (STAND-IN)" ;;
esac
"""
KUBECTL_STANDIN = """#!/bin/sh
# STAND-IN kubectl (ai-eval-factory tests): reports the stand-in node's nvidia.com/gpu capacity.
state=@STATE@
if [ "$(cat "$state/host" 2>/dev/null)" != Running ]; then
  echo 'The connection to the server was refused (kubectl STAND-IN)' >&2; exit 1
fi
cat "$state/gpu" 2>/dev/null
"""

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
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    minikube = mirror_dir / "minikube-linux-amd64"
    minikube.write_text(MINIKUBE_STANDIN.replace("@STATE@", str(cluster)))
    kubectl = mirror_dir / "kubectl"
    kubectl.write_text(KUBECTL_STANDIN.replace("@STATE@", str(cluster)))
    # minikube publishes a .sha256 file holding only the digest, like the real release.
    (mirror_dir / "minikube-linux-amd64.sha256").write_text(hashlib.sha256(minikube.read_bytes()).hexdigest())
    (tmp_path / "bin").mkdir()
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
        "minikube_gpu_wait_seconds": 0,
        "ansible_python_interpreter": sys.executable,
        # become_user (the minikube user) through su: root needs no password, and this machine has no sudo.
        "ansible_become_method": "su",
    }


def play(tmp_path: Path, variables: dict[str, object], *extra: str) -> subprocess.CompletedProcess[str]:
    """The role on this machine through the stand-ins (the harness's one way of running a local play)."""
    return play_locally(tmp_path, PLAYBOOK, variables, *extra)


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
    cache = (tmp_path / "model-cache").stat()
    # The contract with pulumi/'s static PersistentVolume: vLLM (uid/gid 10002) writes the cache.
    assert (cache.st_uid, cache.st_gid, cache.st_mode & 0o7777) == (10002, 10002, 0o775)

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
    assert "Check mode: minikube status says no cluster; a real run would start it" in result.stdout
    assert not any((tmp_path / "bin").iterdir())
    assert not (tmp_path / "sysctl.d").exists()


def cluster(tmp_path: Path, host: str | None, gpu: str) -> Path:
    state = tmp_path / "cluster"
    if host:
        (state / "host").write_text(host + "\n")
    (state / "gpu").write_text(gpu)
    return state


def calls(state: Path) -> list[str]:
    log = state / "calls"
    return log.read_text().splitlines() if log.exists() else []


def test_absent_cluster_is_started_then_left_running(tmp_path, mirror):
    state = cluster(tmp_path, None, "1")
    variables = {**mirror, "minikube_start": True}
    first = play(tmp_path, variables)
    assert first.returncode == 0, first.stdout[-4000:]
    starts = [c for c in calls(state) if c.startswith("start")]
    assert len(starts) == 1
    assert "--gpus=all" in starts[0] and "--driver=docker" in starts[0] and "--container-runtime=docker" in starts[0]
    assert f"--mount-string={tmp_path / 'model-cache'}:/models" in starts[0]
    assert "nvidia.com/gpu capacity: 1" in first.stdout

    second = play(tmp_path, variables)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)["changed"] == 0
    assert [c for c in calls(state) if c.startswith("start")] == starts  # running: not started again


def test_stopped_cluster_is_started_not_recreated(tmp_path, mirror):
    state = cluster(tmp_path, "Stopped", "1")
    result = play(tmp_path, {**mirror, "minikube_start": True})
    assert result.returncode == 0, result.stdout[-4000:]
    verbs = [c.split()[0] for c in calls(state)]
    assert "start" in verbs and "delete" not in verbs


def test_no_gpu_capacity_fails_and_names_the_wsl_limit(tmp_path, mirror):
    cluster(tmp_path, "Running", "0")
    result = play(tmp_path, {**mirror, "minikube_start": True})
    assert result.returncode != 0
    assert "reports no nvidia.com/gpu capacity" in result.stdout
    assert "minikube issue 17654" in result.stdout


def test_check_mode_asks_a_running_cluster(tmp_path, mirror):
    state = cluster(tmp_path, "Running", "1")
    assert play(tmp_path, mirror).returncode == 0  # installs the stand-ins
    result = play(tmp_path, {**mirror, "minikube_start": True}, "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Check mode: minikube status says Running; nothing to start." in result.stdout
    assert "nvidia.com/gpu capacity: 1" in result.stdout  # checked, not assumed
    assert recap(result.stdout)["changed"] == 0
    assert not [c for c in calls(state) if c.startswith("start")]


def test_memory_beyond_the_machine_is_refused_with_the_wslconfig_fix(tmp_path, mirror):
    result = play(tmp_path, {**mirror, "minikube_start": True, "minikube_memory": "4096g"})
    assert result.returncode != 0
    assert ".wslconfig" in result.stdout and "memory=" in result.stdout and "wsl --shutdown" in result.stdout
    assert not any((tmp_path / "bin").iterdir())  # refused before the downloads
