"""The k3s role (the opt-in engine: site_kubernetes_engine=k3s) up to its network boundary, on this machine.

k3s's real download (GitHub) and its server (systemd, a real node) cannot run here. What runs for real: input
validation, get_url's SHA-256 check against a k3s-style sha256sum-amd64.txt on a file:// mirror, the config file,
the manifests k3s's deploy controller applies, the model cache and its /models link, the kubeconfig merge into the
user's file, and the role's GPU logic, driven by tests/ansible/k3s_standins.py (k3s v1.34.1+k3s1's documented
behaviour: runtime detection at start, the pre-installed RuntimeClass, the device plugin's log lines).
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest
import yaml
from ansible_harness import REPO, play_locally, recap
from k3s_standins import K3S
from minikube_standins import write

PLAYBOOK = """\
- name: k3s role against this machine
  hosts: localhost
  gather_facts: true
  gather_subset: [min]
  roles:
    - role: k3s
"""


@pytest.fixture
def host(tmp_path: Path) -> dict[str, object]:
    """A file:// mirror laid out like k3s's releases, a stand-in host, and the role variables pointing at them."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    state = tmp_path / "host"
    state.mkdir()
    (tmp_path / "bin").mkdir()
    k3s = write(mirror / "k3s", K3S, STATE=str(state), CONFIG_DIR=str(tmp_path / "etc-rancher-k3s"))
    # The release's checksum file lists every asset, the binary among them as "k3s".
    (mirror / "sha256sum-amd64.txt").write_text(
        f"{'1' * 64}  k3s-airgap-images-amd64.tar\n{hashlib.sha256(k3s.read_bytes()).hexdigest()}  k3s\n"
    )
    return {
        "k3s_download_url": k3s.as_uri(),
        "k3s_sha256": (mirror / "sha256sum-amd64.txt").as_uri(),
        "k3s_bin_dir": str(tmp_path / "bin"),
        "k3s_config_dir": str(tmp_path / "etc-rancher-k3s"),
        "k3s_data_dir": str(tmp_path / "var-lib-rancher-k3s"),
        "k3s_model_cache_dir": str(tmp_path / "model-cache"),
        "k3s_model_cache_mount": str(tmp_path / "models"),
        "k3s_kubeconfig": str(tmp_path / "home" / ".kube" / "config"),
        "k3s_user": "root",
        # No systemd here: the stand-in server starts when first asked (see k3s_standins.py).
        "k3s_manage_service": False,
        "k3s_gpu_wait_seconds": 0,
        "k3s_nvidia_smi_paths": [str(tmp_path / "no-nvidia-smi")],
        "factory_host_is_wsl": False,
        "ansible_python_interpreter": sys.executable,
    }


def gpu_host(tmp_path: Path, variables: dict[str, object], kind: str, runtime: bool = True) -> Path:
    """Give the stand-in host a GPU of this kind (linux, wsl, wsl-no-dxcore) and, if asked, NVIDIA's runtime."""
    state = tmp_path / "host"
    (state / "gpu").write_text(kind)
    smi = tmp_path / "smi" / "nvidia-smi"
    smi.parent.mkdir(exist_ok=True)
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA STAND-IN GPU (UUID: GPU-0)'\n")
    smi.chmod(0o755)
    variables["k3s_nvidia_smi_paths"] = [str(smi)]
    variables["factory_host_is_wsl"] = kind.startswith("wsl")
    runtime_dir = tmp_path / "usr-bin"
    runtime_dir.mkdir(exist_ok=True)
    (state / "runtime-dirs").write_text(str(runtime_dir))
    if runtime:
        (runtime_dir / "nvidia-container-runtime").write_text("#!/bin/sh\n# STAND-IN\n")
        (runtime_dir / "nvidia-container-runtime").chmod(0o755)
    return state


def play(tmp_path: Path, variables: dict[str, object], *extra: str):
    return play_locally(tmp_path, PLAYBOOK, variables, *extra)


def text(result) -> str:
    return " ".join(result.stdout.split())


def test_wsl_takes_the_host_runtime_path_and_a_pod_can_get_the_gpu(tmp_path, host):
    gpu_host(tmp_path, host, "wsl")
    first = play(tmp_path, host)
    assert first.returncode == 0, first.stdout[-4000:]
    out = text(first)
    assert "k3s on WSL2: NVIDIA's runtime on the host" in out  # the path taken, said
    assert "nvidia.com/gpu capacity: 1" in out
    config = yaml.safe_load((tmp_path / "etc-rancher-k3s" / "config.yaml").read_text())
    assert config["default-runtime"] == "nvidia" and config["data-dir"] == host["k3s_data_dir"]
    manifests = Path(str(host["k3s_data_dir"])) / "server" / "manifests"
    [plugin] = [d for d in yaml.safe_load_all((manifests / "ai-eval-factory-nvidia-device-plugin.yaml").read_text())]
    pod = plugin["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["containers"][0]["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.19.1"
    # The dev stack's results PVC asks for "standard": served by k3s's local-path provisioner.
    [storage] = list(yaml.safe_load_all((manifests / "ai-eval-factory-storageclass.yaml").read_text()))
    assert (storage["metadata"]["name"], storage["provisioner"]) == ("standard", "rancher.io/local-path")
    # The model cache: vLLM's uid owns it, and the node's /models (the dev stack's hostPath) leads to it.
    cache = (tmp_path / "model-cache").stat()
    assert (cache.st_uid, cache.st_gid, cache.st_mode & 0o7777) == (10002, 10002, 0o775)
    assert (tmp_path / "models").resolve() == tmp_path / "model-cache"

    second = play(tmp_path, host)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)["changed"] == 0


def test_the_kubeconfig_gains_the_dev_stacks_context_and_keeps_the_others(tmp_path, host):
    kubeconfig = Path(str(host["k3s_kubeconfig"]))
    kubeconfig.parent.mkdir(parents=True)
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "prod-gpu",
                "clusters": [{"name": "prod-gpu", "cluster": {"server": "https://prod.invalid"}}],
                "users": [{"name": "prod-gpu", "user": {"token": "kept"}}],
                "contexts": [{"name": "prod-gpu", "context": {"cluster": "prod-gpu", "user": "prod-gpu"}}],
            }
        )
    )
    result = play(tmp_path, host)
    assert result.returncode == 0, result.stdout[-4000:]
    merged = yaml.safe_load(kubeconfig.read_text())
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    contexts = {c["name"]: c["context"] for c in merged["contexts"]}
    dev_context = yaml.safe_load((REPO / "pulumi" / "Pulumi.dev.yaml").read_text())["config"][
        "ai-eval-factory:kubeContext"
    ]
    assert contexts[dev_context] == {"cluster": "k3s", "user": "k3s"}  # what the dev stack's provider targets
    assert contexts["prod-gpu"] == {"cluster": "prod-gpu", "user": "prod-gpu"}
    assert merged["current-context"] == "prod-gpu"  # the admin's choice is not taken over
    clusters = {c["name"]: c["cluster"] for c in merged["clusters"]}
    assert clusters["k3s"]["server"] == "https://127.0.0.1:6443"
    assert {u["name"] for u in merged["users"]} == {"k3s", "prod-gpu"}


def test_nvidia_runtime_missing_when_k3s_started_stops_with_a_restart_that_keeps_every_flag(tmp_path, host):
    gpu_host(tmp_path, host, "wsl", runtime=False)
    result = play(tmp_path, host)
    assert result.returncode != 0
    out = text(result)
    assert "k3s registered no nvidia runtime" in out
    assert "sudo systemctl restart k3s" in out and "config.yaml" in out


@pytest.mark.parametrize(
    ("kind", "variables", "diagnosis"),
    [
        ("wsl-no-dxcore", {}, "NVML reports Not Supported"),
        (
            "linux",
            {"k3s_default_runtime": False, "k3s_device_plugin_runtime_class": ""},
            "does not run on NVIDIA's runtime",
        ),
    ],
)
def test_capacity_wait_ends_with_the_plugin_logs_diagnosis(tmp_path, host, kind, variables, diagnosis):
    gpu_host(tmp_path, host, kind)
    result = play(tmp_path, {**host, **variables})
    assert result.returncode != 0
    out = text(result)
    assert "The k3s node reports no nvidia.com/gpu capacity" in out
    assert diagnosis in out


def test_without_a_gpu_k3s_is_cpu_only_and_says_so(tmp_path, host):
    result = play(tmp_path, host)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "No NVIDIA GPU on this host: k3s runs CPU-only" in text(result)
    config = yaml.safe_load((tmp_path / "etc-rancher-k3s" / "config.yaml").read_text())
    assert "default-runtime" not in config
    manifests = Path(str(host["k3s_data_dir"])) / "server" / "manifests"
    assert not (manifests / "ai-eval-factory-nvidia-device-plugin.yaml").exists()


def test_native_linux_gets_the_gpu_through_the_same_runtime(tmp_path, host):
    gpu_host(tmp_path, host, "linux")
    result = play(tmp_path, host)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "k3s on native Linux: NVIDIA's runtime on the host" in text(result)
    assert "nvidia.com/gpu capacity: 1" in result.stdout


def test_a_wrong_digest_refuses_the_download(tmp_path, host):
    (tmp_path / "mirror" / "sha256sum-amd64.txt").write_text(f"{'0' * 64}  k3s\n")
    result = play(tmp_path, host)
    assert result.returncode != 0
    assert "did not match" in result.stdout
    assert not (tmp_path / "bin" / "k3s").exists()


def test_check_mode_on_a_fresh_host_changes_nothing_and_says_so(tmp_path, host):
    gpu_host(tmp_path, host, "wsl")
    result = play(tmp_path, host, "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Check mode: k3s is not installed yet" in text(result)
    assert not (tmp_path / "bin" / "k3s").exists()
    assert not (tmp_path / "etc-rancher-k3s").exists()


def test_the_default_download_names_the_pinned_release_and_its_checksum_file():
    defaults = yaml.safe_load((REPO / "ansible" / "roles" / "k3s" / "defaults" / "main.yml").read_text())
    assert re.fullmatch(r"v1\.3[3-9]\.\d+\+k3s\d+", defaults["k3s_version"])
    assert "releases/download/" in defaults["k3s_download_url"]
    assert defaults["k3s_sha256"].endswith("/sha256sum-{{ k3s_arch }}.txt")


def test_the_model_cache_contract_is_the_same_for_both_engines():
    k3s = yaml.safe_load((REPO / "ansible" / "roles" / "k3s" / "defaults" / "main.yml").read_text())
    minikube = yaml.safe_load((REPO / "ansible" / "roles" / "minikube" / "defaults" / "main.yml").read_text())
    assert k3s["k3s_model_cache_dir"] == minikube["minikube_model_cache_dir"]
    assert k3s["k3s_model_cache_mount"] == minikube["minikube_model_cache_mount"]
    assert k3s["k3s_device_plugin_image"] == minikube["minikube_device_plugin_image"]
    assert k3s["k3s_dev_context"] == minikube["minikube_dev_context"]
