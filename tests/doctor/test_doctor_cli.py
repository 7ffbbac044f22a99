"""The host doctor (ansible/files/factory_doctor.py, formerly `evaluator doctor`) run as a real subprocess: exit codes, what it prints, what it tells the admin to do.

No GPU, Docker daemon or Kubernetes cluster exists on the test machines. The GPU success paths therefore use
small fake `nvidia-smi`, `docker` and `kubectl` scripts put first on PATH (the boundary that cannot run here);
every failure path uses the real tools or a real closed port / missing socket.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCTOR = REPO / "ansible" / "files" / "factory_doctor.py"


def doctor(*args: str, path: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    if path is not None:
        full_env["PATH"] = path
    return subprocess.run(
        [sys.executable, str(DOCTOR), *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fake_bin(directory: Path, name: str, stdout: str, rc: int = 0) -> None:
    """A script that prints `stdout` and exits `rc`, using shell builtins only (PATH may hold nothing else)."""
    lines = "".join("printf '%s\\n' '" + line.replace("'", "'\\''") + "'\n" for line in stdout.splitlines())
    script = directory / name
    script.write_text(f"#!/bin/sh\n{lines}exit {rc}\n")
    script.chmod(0o755)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def listening_port():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def test_memory_only_passes_with_a_low_threshold():
    result = doctor("--only", "memory", "--min-memory-gib", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[OK  ] memory/total:" in result.stdout
    assert "doctor: all checks passed" in result.stdout


def test_memory_below_threshold_fails_and_says_what_to_do():
    result = doctor("--only", "memory", "--min-memory-gib", "100000")
    assert result.returncode == 1
    assert "[FAIL] memory/total:" in result.stdout
    assert "->" in result.stdout  # a remedy line follows the finding


def test_network_reachable_and_unreachable_services(listening_port, closed_port):
    result = doctor(
        "--only",
        "network",
        "--service",
        f"up=http://127.0.0.1:{listening_port}",
        "--service",
        f"evaluator-api=tcp://127.0.0.1:{closed_port}",
    )
    assert result.returncode == 1
    assert f"[OK  ] network/up: 127.0.0.1:{listening_port} accepts connections" in result.stdout
    assert f"[FAIL] network/evaluator-api: 127.0.0.1:{closed_port} unreachable" in result.stdout
    assert f"kubectl port-forward svc/evaluator-api {closed_port}:{closed_port}" in result.stdout
    assert "minikube service evaluator-api --url" in result.stdout


def test_network_all_reachable_exits_zero(listening_port):
    result = doctor("--only", "network", "--service", f"up=http://127.0.0.1:{listening_port}")
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [("jenkins", "expected NAME=URL"), ("x=ftp://h:1", "must be http://"), ("x=tcp://h", "needs a port")],
)
def test_bad_service_is_a_usage_error_naming_the_value(spec, message):
    result = doctor("--only", "network", "--service", spec)
    assert result.returncode == 2
    assert spec in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr


def test_gpu_missing_on_host_skips_the_other_layers(tmp_path):
    # A PATH without nvidia-smi: the real "command not found" path (no GPU exists on this machine anyway).
    result = doctor("--only", "gpu", path=str(tmp_path))
    assert result.returncode == 1
    assert "[FAIL] gpu/host: nvidia-smi: command not found" in result.stdout
    assert "never a Linux driver inside WSL" in result.stdout
    assert "[SKIP] gpu/docker" in result.stdout and "[SKIP] gpu/pod" in result.stdout


def test_gpu_on_host_but_not_in_docker_or_pods(tmp_path):
    # Fakes: nvidia-smi sees a GPU (none exists here), docker lacks the nvidia runtime; kubectl is absent.
    fake_bin(tmp_path, "nvidia-smi", "GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-fake)")
    fake_bin(tmp_path, "docker", 'could not select device driver "" with capabilities: [[gpu]]', rc=125)
    result = doctor("--only", "gpu", "--timeout", "10", path=str(tmp_path))
    assert result.returncode == 1
    assert "[OK  ] gpu/host: GPU 0: NVIDIA GeForce RTX 4090" in result.stdout
    assert "[FAIL] gpu/docker: could not select device driver" in result.stdout
    assert "nvidia-ctk runtime configure --runtime=docker" in result.stdout
    assert "[FAIL] gpu/pod: kubectl: command not found" in result.stdout
    # Never `minikube delete && minikube start --gpus=all`: that loses the /models mount and the other flags.
    assert "ansible-playbook -K ansible/site.yml" in result.stdout and "minikube delete" not in result.stdout


def test_gpu_device_plugin_silent_failure_is_caught(tmp_path):
    fake_bin(tmp_path, "nvidia-smi", "GPU 0: NVIDIA A10G (UUID: GPU-fake)")
    fake_bin(tmp_path, "docker", "GPU 0: NVIDIA A10G (UUID: GPU-fake)")
    fake_bin(tmp_path, "kubectl", "")  # the node has no nvidia.com/gpu capacity
    result = doctor("--only", "gpu", path=str(tmp_path))
    assert result.returncode == 1
    assert "[FAIL] gpu/pod: no node reports allocatable nvidia.com/gpu" in result.stdout
    assert "bpf_jit_harden" in result.stdout


def test_gpu_all_layers_ok(tmp_path):
    fake_bin(tmp_path, "nvidia-smi", "GPU 0: NVIDIA A10G (UUID: GPU-fake)")
    fake_bin(tmp_path, "docker", "GPU 0: NVIDIA A10G (UUID: GPU-fake)")
    fake_bin(tmp_path, "kubectl", "1")
    result = doctor("--only", "gpu", "--json", path=str(tmp_path))
    assert result.returncode == 0, result.stdout
    findings = json.loads(result.stdout)
    assert [(f["name"], f["status"]) for f in findings] == [("host", "ok"), ("docker", "ok"), ("pod", "ok")]
    assert findings[2]["saw"] == "1 nvidia.com/gpu allocatable for pods"


def test_disk_reports_free_space_and_an_unreachable_docker_daemon(tmp_path):
    # The real docker client pointed at a socket nobody serves: the daemon-not-reachable path, for real.
    result = doctor(
        "--only",
        "disk",
        "--path",
        str(tmp_path),
        "--min-free-gib",
        "0",
        DOCKER_HOST=f"unix://{tmp_path}/no-daemon.sock",
    )
    assert result.returncode == 1
    assert f"[OK  ] disk/space {tmp_path}:" in result.stdout and "GiB free of" in result.stdout
    assert "[FAIL] disk/docker:" in result.stdout
    assert "sudo systemctl start docker" in result.stdout


def test_disk_below_threshold_suggests_pruning(tmp_path):
    fake_bin(tmp_path, "docker", "TYPE   TOTAL  ACTIVE  SIZE  RECLAIMABLE\nImages 3      1       2GB   1.5GB (75%)")
    result = doctor(
        "--only", "disk", "--path", str(tmp_path), "--min-free-gib", "1000000", path=f"{tmp_path}:/usr/bin:/bin"
    )
    assert result.returncode == 1
    assert f"[FAIL] disk/space {tmp_path}:" in result.stdout
    assert "docker system prune" in result.stdout
    assert "[OK  ] disk/docker: docker system df:" in result.stdout
    assert "RECLAIMABLE" in result.stdout


def test_the_evaluator_carries_no_host_doctor():
    # Host diagnostics live with the host bootstrap (ansible/files): not in the evaluator's package, CLI or image.
    from evaluator.cli import SUBCOMMANDS

    assert "doctor" not in SUBCOMMANDS
    assert not (REPO / "evaluator" / "doctor.py").exists()
    assert not any("doctor" in path.name for path in (REPO / "evaluator").rglob("*.py"))
    # Standard library only: it runs with whatever Python the host has (Ubuntu 22.04's 3.10 on a remote server).
    import ast

    tree = ast.parse(DOCTOR.read_text(), feature_version=(3, 10))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)


def test_docker_group_granted_in_this_run_is_used_through_sg(tmp_path, monkeypatch):
    # A process started before `usermod -aG docker` lacks the group: the doctor re-runs itself through `sg docker`.
    import factory_doctor

    class Group:
        gr_gid = 4242
        gr_mem = ("factory-dev",)

    class User:
        pw_name = "factory-dev"

    monkeypatch.delenv(factory_doctor.SG_MARKER, raising=False)
    monkeypatch.setattr(factory_doctor.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(factory_doctor.os, "getgroups", lambda: [1000])
    monkeypatch.setattr(factory_doctor.grp, "getgrnam", lambda name: Group())
    monkeypatch.setattr(factory_doctor.pwd, "getpwuid", lambda uid: User())
    monkeypatch.setattr(factory_doctor.shutil, "which", lambda name: "/usr/bin/sg")
    command = factory_doctor.docker_group_command(["/x/factory_doctor.py", "--only", "disk"])
    assert command is not None and command[:3] == ["sg", "docker", "-c"]
    assert command[3].endswith("/x/factory_doctor.py --only disk")
    monkeypatch.setattr(factory_doctor.os, "getgroups", lambda: [1000, 4242])  # already has it: no re-run
    assert factory_doctor.docker_group_command(["/x/factory_doctor.py"]) is None
