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
import yaml
from ansible_harness import REPO, play_locally
from minikube_standins import KUBECTL, MINIKUBE, write

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
    places = {
        "STATE": str(cluster),
        "CDI_SPEC": str(tmp_path / "cdi" / "nvidia.yaml"),
        "MINIKUBE_HOME": str(tmp_path / ".minikube"),
    }
    minikube = write(mirror_dir / "minikube-linux-amd64", MINIKUBE, **places)
    kubectl = write(mirror_dir / "kubectl", KUBECTL, **places)
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
        # The profile's saved config (minikube's own file) and the host's CDI spec, in tmp_path.
        "minikube_home": str(tmp_path / ".minikube"),
        "minikube_kubeconfig": str(tmp_path / ".kube" / "config"),
        "minikube_cdi_spec_path": str(tmp_path / "cdi" / "nvidia.yaml"),
        # No GPU unless a test installs a stand-in nvidia-smi; not WSL unless a test says so.
        "minikube_nvidia_smi_paths": [str(tmp_path / "no-nvidia-smi")],
        "factory_host_is_wsl": False,
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


def cluster(tmp_path: Path, host: str | None, gpu: str, mirror: dict[str, object] | None = None) -> Path:
    """The stand-in cluster's state; gpu: none, linux or wsl (the host's GPU kind). With mirror, a GPU host."""
    state = tmp_path / "cluster"
    if host:
        (state / "host").write_text(host + "\n")
    (state / "gpu").write_text(gpu)
    if gpu != "none" and mirror is not None:
        smi = tmp_path / "bin" / "nvidia-smi"
        smi.parent.mkdir(exist_ok=True)
        smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA STAND-IN GPU (UUID: GPU-0)'\n")
        smi.chmod(0o755)
        mirror["minikube_nvidia_smi_paths"] = [str(smi)]
        mirror["factory_host_is_wsl"] = gpu == "wsl"
    return state


def calls(state: Path) -> list[str]:
    log = state / "calls"
    return log.read_text().splitlines() if log.exists() else []


def test_absent_cluster_is_started_then_left_running(tmp_path, mirror):
    state = cluster(tmp_path, None, "linux", mirror)
    variables = {**mirror, "minikube_start": True}
    first = play(tmp_path, variables)
    assert first.returncode == 0, first.stdout[-4000:]
    starts = [c for c in calls(state) if c.startswith("start")]
    assert len(starts) == 1
    assert "--gpus=all" in starts[0] and "--driver=docker" in starts[0] and "--container-runtime=docker" in starts[0]
    assert f"--mount-string={tmp_path / 'model-cache'}:/models" in starts[0]
    assert "nvidia.com/gpu capacity: 1" in first.stdout
    # The dev stack's kubeContext names an alias of minikube's context (the k3s role writes the same name).
    kubeconfig = yaml.safe_load((tmp_path / ".kube" / "config").read_text())
    contexts = {c["name"]: c["context"] for c in kubeconfig["contexts"]}
    dev_context = yaml.safe_load((REPO / "pulumi" / "Pulumi.dev.yaml").read_text())["config"][
        "ai-eval-factory:kubeContext"
    ]
    assert contexts[dev_context] == {"cluster": "minikube", "user": "minikube"}
    assert kubeconfig["current-context"] == "minikube"

    second = play(tmp_path, variables)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)["changed"] == 0
    assert [c for c in calls(state) if c.startswith("start")] == starts  # running: not started again


def test_stopped_cluster_is_started_not_recreated(tmp_path, mirror):
    state = cluster(tmp_path, None, "linux", mirror)
    assert play(tmp_path, {**mirror, "minikube_start": True}).returncode == 0  # the profile and its saved config
    (state / "host").write_text("Stopped\n")
    result = play(tmp_path, {**mirror, "minikube_start": True})
    assert result.returncode == 0, result.stdout[-4000:]
    verbs = [c.split()[0] for c in calls(state)]
    assert "start" in verbs and "delete" not in verbs


def test_no_gpu_capacity_fails_and_names_the_wsl_limit(tmp_path, mirror):
    # The legacy --gpus=all path on WSL2: the node never gains nvidia.com/gpu (minikube#17654).
    cluster(tmp_path, None, "wsl", mirror)
    result = play(tmp_path, {**mirror, "minikube_start": True, "minikube_gpus": "all"})
    assert result.returncode != 0
    assert "reports no nvidia.com/gpu capacity" in result.stdout
    assert "minikube issue 17654" in result.stdout


def test_check_mode_asks_a_running_cluster(tmp_path, mirror):
    state = cluster(tmp_path, None, "linux", mirror)
    assert play(tmp_path, {**mirror, "minikube_start": True}).returncode == 0  # installs and starts
    result = play(tmp_path, {**mirror, "minikube_start": True}, "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Check mode: minikube status says Running; nothing to start." in result.stdout
    assert "nvidia.com/gpu capacity: 1" in result.stdout  # checked, not assumed
    assert recap(result.stdout)["changed"] == 0
    assert len([c for c in calls(state) if c.startswith("start")]) == 1  # only the real run's


def test_memory_beyond_the_machine_is_refused_with_the_wslconfig_fix(tmp_path, mirror):
    result = play(tmp_path, {**mirror, "minikube_start": True, "minikube_memory": "4096g"})
    assert result.returncode != 0
    assert ".wslconfig" in result.stdout and "memory=" in result.stdout and "wsl --shutdown" in result.stdout
    assert not any((tmp_path / "bin").iterdir())  # refused before the downloads


# --- the GPU path a pod can use, per host (issue 19) ------------------------------------------------------------

WSL_CDI_SPEC = """---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/dxg
containerEdits:
  mounts:
  - hostPath: /usr/lib/wsl/lib/libdxcore.so
    containerPath: /usr/lib/wsl/lib/libdxcore.so
    options: [ro, nosuid, nodev, rbind, rprivate]
"""


def cdi_spec(tmp_path: Path, text: str) -> None:
    (tmp_path / "cdi").mkdir(exist_ok=True)
    (tmp_path / "cdi" / "nvidia.yaml").write_text(text)


def test_wsl_takes_the_cdi_path_and_a_pod_can_get_the_gpu(tmp_path, mirror):
    state = cluster(tmp_path, None, "wsl", mirror)
    cdi_spec(tmp_path, WSL_CDI_SPEC)
    result = play(tmp_path, {**mirror, "minikube_start": True, "minikube_gpu_wait_seconds": 20})
    assert result.returncode == 0, result.stdout[-4000:]
    [start] = [c for c in calls(state) if c.startswith("start")]
    assert "--gpus=nvidia.com" in start and "--gpus=all" not in start
    # The addon's v0.18.2 is replaced by the project's pinned plugin, which knows WSL's single "all" device.
    assert "addons disable nvidia-device-plugin" in "\n".join(calls(state))
    assert "nvcr.io/nvidia/k8s-device-plugin:v0.19.1" in (state / "applied").read_text()
    assert "WSL2: the CDI path" in result.stdout  # the play says which path it took
    assert "nvidia.com/gpu capacity: 1" in result.stdout


def test_wsl_refuses_a_cdi_spec_without_libdxcore_before_starting(tmp_path, mirror):
    # nvidia-container-toolkit#1739: `nvidia-ctk cdi generate` can miss libdxcore.so; NVML then fails in the node.
    state = cluster(tmp_path, None, "wsl", mirror)
    cdi_spec(tmp_path, WSL_CDI_SPEC.replace("libdxcore.so", "libcuda.so.1.1"))
    result = play(tmp_path, {**mirror, "minikube_start": True})
    assert result.returncode != 0
    assert "/usr/lib/wsl/lib/libdxcore.so" in result.stdout and "1739" in result.stdout
    assert not [c for c in calls(state) if c.startswith("start")]


@pytest.mark.parametrize(
    ("log_line", "diagnosis"),
    [
        ("Failed to initialize NVML: Not Supported.", "NVML reports Not Supported"),
        ("No devices found. Waiting indefinitely.", "found no GPU device"),
        ("Incompatible strategy detected auto", "runtime is not NVIDIA's"),
    ],
)
def test_capacity_wait_ends_with_a_targeted_diagnosis_and_a_fix_that_keeps_every_flag(
    tmp_path, mirror, log_line, diagnosis
):
    state = cluster(tmp_path, None, "wsl", mirror)
    cdi_spec(tmp_path, WSL_CDI_SPEC)
    # A kubectl whose node never gains the GPU and whose plugin logged this line.
    kubectl = Path(str(mirror["minikube_kubectl_download_url"]).removeprefix("file://"))
    kubectl.write_text(
        f"#!/bin/sh\n# STAND-IN kubectl\ncase \"$*\" in *logs*) echo 'E1203 {log_line}';; *) echo '';; esac\n"
    )
    mirror["minikube_kubectl_sha256"] = hashlib.sha256(kubectl.read_bytes()).hexdigest()
    result = play(tmp_path, {**mirror, "minikube_start": True, "minikube_gpu_wait_seconds": 1})
    assert result.returncode != 0
    text = " ".join(result.stdout.split())
    assert diagnosis in text, text[-3000:]
    # The fix recreates with the play's own flags (never a bare `minikube start --gpus=all`).
    assert "-e minikube_recreate=true" in text
    assert f"--mount-string={tmp_path / 'model-cache'}:/models" in text
    assert "minikube delete && minikube start --gpus=all" not in text
    assert len([c for c in calls(state) if c.startswith("start")]) == 1


def test_native_linux_keeps_gpus_all_and_the_addon(tmp_path, mirror):
    state = cluster(tmp_path, None, "linux", mirror)
    result = play(tmp_path, {**mirror, "minikube_start": True, "minikube_gpu_wait_seconds": 20})
    assert result.returncode == 0, result.stdout[-4000:]
    [start] = [c for c in calls(state) if c.startswith("start")]
    assert "--gpus=all" in start
    assert not (state / "applied").exists()  # the addon serves native Linux


def test_without_a_gpu_minikube_starts_cpu_only_and_says_so(tmp_path, mirror):
    state = cluster(tmp_path, None, "none")
    result = play(tmp_path, {**mirror, "minikube_start": True})
    assert result.returncode == 0, result.stdout[-4000:]
    [start] = [c for c in calls(state) if c.startswith("start")]
    assert "--gpus" not in start
    assert "No NVIDIA GPU on this host: minikube starts CPU-only" in " ".join(result.stdout.split())
    assert "nvidia.com/gpu capacity:" not in result.stdout  # no capacity wait on a CPU cluster


def test_drift_from_the_saved_profile_stops_naming_the_flags(tmp_path, mirror):
    state = cluster(tmp_path, None, "linux", mirror)
    assert play(tmp_path, {**mirror, "minikube_start": True, "minikube_memory": "6g"}).returncode == 0
    (state / "host").write_text("Stopped\n")
    result = play(tmp_path, {**mirror, "minikube_start": True, "minikube_memory": "8g", "minikube_cpus": 3})
    assert result.returncode != 0
    text = " ".join(result.stdout.split())
    assert "--memory" in text and "6144" in text and "8192" in text and "--cpus" in text
    assert "-e minikube_recreate=true" in text
    assert len([c for c in calls(state) if c.startswith("start")]) == 1  # not started with flags it would ignore


def test_a_lost_mount_is_drift_not_a_guest_mount_conflict(tmp_path, mirror):
    # A profile started by hand without the model cache: minikube would refuse the mount (GUEST_MOUNT_CONFLICT).
    state = cluster(tmp_path, None, "linux", mirror)
    profile = tmp_path / ".minikube" / "profiles" / "minikube"
    profile.mkdir(parents=True)
    (profile / "config.json").write_text(
        '{"Memory": 12288, "CPUs": 4, "Driver": "docker", "GPUs": "all", "MountString": "",'
        ' "ContainerVolumeMounts": [], "KubernetesConfig": {"KubernetesVersion": "v1.34.0",'
        ' "ContainerRuntime": "docker"}}'
    )
    (state / "host").write_text("Stopped\n")
    refused = play(tmp_path, {**mirror, "minikube_start": True})
    assert refused.returncode != 0 and "--mount-string" in refused.stdout
    recreated = play(tmp_path, {**mirror, "minikube_start": True, "minikube_recreate": True})
    assert recreated.returncode == 0, recreated.stdout[-4000:]
    verbs = [c.split()[0] for c in calls(state)]
    assert verbs.count("delete") == 1
    start = [c for c in calls(state) if c.startswith("start")][-1]
    assert f"--mount-string={tmp_path / 'model-cache'}:/models" in start and "--gpus=all" in start
