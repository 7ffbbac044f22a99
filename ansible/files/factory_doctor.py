#!/usr/bin/env python3
"""The factory host's doctor: the four classic failures of a WSL2 GPU host, each with what was seen and what to do.

The checks are the guide's troubleshooting section as code: WSL memory (the .wslconfig cap), networking to the
services (port-forward / `minikube service --url`), the GPU at each layer (host, Docker, a pod), and disk space
(`docker system df`). Each prints a line per finding; the exit code is 1 when any check failed, 2 on bad options.

It diagnoses the host that ansible/site.yml bootstraps, so it lives beside that play (the evaluator's package,
image and CLI carry none of it) and is a single standard-library file: the play copies it to any factory host
and runs it with the Python Ansible found there (Ubuntu 22.04's 3.10 included). By hand, from the repository:
`python3 ansible/files/factory_doctor.py --help` (formerly `evaluator doctor`, same options).

Docker access is checked as the user will have it after logging in again: a docker group granted earlier in the
same play is in /etc/group but not in a process that started before, so the doctor then re-runs itself through
`sg docker`, a fresh group set, as a new login would.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

GIB = 1024**3
CHECKS = ("memory", "network", "gpu", "disk")
DEFAULT_SERVICES = ("jenkins=http://127.0.0.1:8080", "portainer=https://127.0.0.1:9443")
DEFAULT_GPU_IMAGE = "nvidia/cuda:12.6.3-base-ubuntu24.04"
WSL_SMI = Path("/usr/lib/wsl/lib/nvidia-smi")


class Status:
    """A finding's verdict, as it appears in --json (plain strings: no enum.StrEnum before Python 3.11)."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Finding:
    """One thing the doctor looked at: what it saw, and what to do about it (empty when nothing)."""

    check: str
    name: str
    status: str
    saw: str
    todo: str = ""


@dataclass(frozen=True)
class Ran:
    """The outcome of one external command; rc 127 means the command was not found."""

    rc: int
    out: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


Runner = Callable[[Sequence[str], float], Ran]


def run_command(argv: Sequence[str], timeout: float) -> Ran:
    """Run a command, folding 'not found' and time-outs into a Ran instead of raising."""
    if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
        return Ran(127, f"{argv[0]}: command not found")
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Ran(124, f"{argv[0]}: no answer within {timeout:g}s")
    except OSError as exc:
        return Ran(126, f"{argv[0]}: {exc}")
    return Ran(done.returncode, (done.stdout + done.stderr).strip())


def first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "(no output)"
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --- memory -------------------------------------------------------------------------------------------------


def read_meminfo(path: Path) -> dict[str, int]:
    """/proc/meminfo as bytes per key."""
    values: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return values


def is_wsl(version_path: Path) -> bool:
    try:
        return "microsoft" in version_path.read_text().lower()
    except OSError:
        return False


def check_memory(meminfo: Path, version: Path, min_gib: float) -> list[Finding]:
    try:
        info = read_meminfo(meminfo)
    except OSError as exc:
        return [Finding("memory", "total", Status.FAIL, f"cannot read {meminfo}: {exc}")]
    total, available = info.get("MemTotal", 0) / GIB, info.get("MemAvailable", 0) / GIB
    wsl = is_wsl(version)
    saw = f"{total:.1f} GiB total, {available:.1f} GiB available ({'WSL2' if wsl else 'not WSL'})"
    if total >= min_gib:
        return [Finding("memory", "total", Status.OK, saw)]
    if wsl:
        todo = (
            f"WSL2 caps memory: in %UserProfile%\\.wslconfig set [wsl2] memory={max(int(min_gib) + 4, 16)}GB, "
            "then `wsl --shutdown` in PowerShell and reopen the distribution"
        )
    else:
        todo = f"this host has less than {min_gib:g} GiB: lower minikube_memory or add memory"
    return [Finding("memory", "total", Status.FAIL, saw, todo)]


# --- network ------------------------------------------------------------------------------------------------


def parse_service(spec: str) -> tuple[str, str, int]:
    """`name=URL` -> (name, host, port); raises argparse.ArgumentTypeError naming the bad part."""
    name, sep, url = spec.partition("=")
    if not sep or not name or not url:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected NAME=URL, e.g. jenkins=http://127.0.0.1:8080")
    parts = urlsplit(url)
    try:
        port_given = parts.port
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: the port is not a number from 0 to 65535") from None
    if parts.scheme not in ("http", "https", "tcp") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{spec!r}: URL must be http://, https:// or tcp://HOST:PORT")
    port = port_given or {"http": 80, "https": 443}.get(parts.scheme)
    if port is None:
        raise argparse.ArgumentTypeError(f"{spec!r}: a tcp:// URL needs a port")
    return name, parts.hostname, port


def check_network(services: Iterable[tuple[str, str, int]], timeout: float) -> list[Finding]:
    findings = []
    for name, host, port in services:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            todo = (
                f"nothing answers on {host}:{port}. In minikube: `kubectl port-forward svc/{name} {port}:{port}` "
                f"or use the URL `minikube service {name} --url` prints; in the CI stack: "
                f"`docker compose ps` in its project dir; from Windows, WSL forwards localhost only "
                "(networkingMode=mirrored in .wslconfig for LAN access)"
            )
            findings.append(Finding("network", name, Status.FAIL, f"{host}:{port} unreachable ({exc})", todo))
        else:
            findings.append(Finding("network", name, Status.OK, f"{host}:{port} accepts connections"))
    return findings


# --- gpu ----------------------------------------------------------------------------------------------------


def nvidia_smi() -> str:
    return "nvidia-smi" if shutil.which("nvidia-smi") else str(WSL_SMI) if WSL_SMI.is_file() else "nvidia-smi"


def check_gpu(run: Runner, image: str, timeout: float) -> list[Finding]:
    host = run([nvidia_smi(), "-L"], timeout)
    if not (host.ok and "GPU" in host.out):
        todo = (
            "WSL: install/update the NVIDIA driver on Windows (never a Linux driver inside WSL; it provides "
            f"{WSL_SMI}); bare metal: install the NVIDIA driver and reboot"
        )
        return [
            Finding("gpu", "host", Status.FAIL, first_line(host.out), todo),
            Finding("gpu", "docker", Status.SKIP, "not tried: no GPU on the host"),
            Finding("gpu", "pod", Status.SKIP, "not tried: no GPU on the host"),
        ]
    findings = [Finding("gpu", "host", Status.OK, first_line(host.out))]
    docker = run(["docker", "run", "--rm", "--gpus", "all", image, "nvidia-smi", "-L"], timeout)
    if docker.ok and "GPU" in docker.out:
        findings.append(Finding("gpu", "docker", Status.OK, first_line(docker.out)))
    else:
        findings.append(
            Finding(
                "gpu",
                "docker",
                Status.FAIL,
                first_line(docker.out),
                "install the NVIDIA Container Toolkit, `sudo nvidia-ctk runtime configure --runtime=docker`, "
                "`sudo systemctl restart docker` (the nvidia_container_toolkit role does this)",
            )
        )
    findings.append(check_gpu_pod(run, timeout))
    return findings


def check_gpu_pod(run: Runner, timeout: float) -> Finding:
    capacity = run(
        ["kubectl", "get", "nodes", "-o", r"jsonpath={.items[*].status.allocatable.nvidia\.com/gpu}"], timeout
    )
    if not capacity.ok:
        return Finding(
            "gpu",
            "pod",
            Status.FAIL,
            first_line(capacity.out),
            "no cluster answers: re-run `ansible-playbook -K ansible/site.yml` (the minikube role starts it with "
            "every flag: GPUs, the /models mount, memory), then `kubectl get nodes`",
        )
    gpus = sum(int(n) for n in capacity.out.split() if n.isdigit())
    if gpus == 0:
        return Finding(
            "gpu",
            "pod",
            Status.FAIL,
            "no node reports allocatable nvidia.com/gpu",
            "the device plugin found no GPU: `kubectl -n kube-system logs -l name=nvidia-device-plugin-ds`; "
            "check `sysctl net.core.bpf_jit_harden` is 0; re-run `ansible-playbook -K ansible/site.yml`, whose "
            "capacity check names the cause and the fix (a recreate that keeps every start flag)",
        )
    return Finding("gpu", "pod", Status.OK, f"{gpus} nvidia.com/gpu allocatable for pods")


# --- disk ---------------------------------------------------------------------------------------------------


def check_disk(run: Runner, paths: Iterable[Path], min_free_gib: float, timeout: float) -> list[Finding]:
    findings = []
    for path in paths:
        if not path.exists():
            continue
        usage = shutil.disk_usage(path)
        free = usage.free / GIB
        saw = f"{free:.1f} GiB free of {usage.total / GIB:.1f} GiB"
        if free >= min_free_gib:
            findings.append(Finding("disk", f"space {path}", Status.OK, saw))
        else:
            todo = (
                "free space: `docker system prune` (and `docker builder prune`), `minikube ssh -- docker system "
                "prune`; on WSL the ext4.vhdx only grows: compact it from Windows (Optimize-VHD) after pruning"
            )
            findings.append(Finding("disk", f"space {path}", Status.FAIL, saw, todo))
    df = run(["docker", "system", "df"], timeout)
    if df.ok:
        findings.append(Finding("disk", "docker", Status.OK, "docker system df:\n" + df.out))
    else:
        findings.append(
            Finding(
                "disk",
                "docker",
                Status.FAIL,
                first_line(df.out),
                "the Docker daemon is not reachable: `sudo systemctl start docker`; if permission is denied, "
                "`sudo usermod -aG docker $USER` and log in again",
            )
        )
    return findings


# --- command ------------------------------------------------------------------------------------------------

MARK = {Status.OK: "OK  ", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "SKIP"}


def render(finding: Finding) -> str:
    head, *rest = finding.saw.splitlines() or [""]
    lines = [f"[{MARK[finding.status]}] {finding.check}/{finding.name}: {head}"]
    lines += [f"       {line}" for line in rest]
    if finding.todo:
        lines.append(f"       -> {finding.todo}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The command line (the options `evaluator doctor` had)."""

    def at_least(minimum: float) -> Callable[[str], float]:
        def number(text: str) -> float:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
            if value < minimum:
                raise argparse.ArgumentTypeError(f"{text!r} is below the minimum {minimum:g}")
            return value

        return number

    cli = argparse.ArgumentParser(
        prog="factory_doctor.py",
        description="Check WSL memory, networking to services, the GPU (host, Docker, pod) and disk; say what to do. "
        "Exit 0 when every check passed, 1 when any failed, 2 on bad options.",
    )
    cli.add_argument(
        "--only", action="append", choices=CHECKS, default=[], help="Run only these checks (repeatable). Default: all."
    )
    cli.add_argument(
        "--service",
        dest="services",
        action="append",
        type=parse_service,
        default=[],
        metavar="NAME=URL",
        help="A service that must accept connections (repeatable). Default: Jenkins and Portainer on 127.0.0.1.",
    )
    cli.add_argument("--min-memory-gib", type=at_least(0), default=8.0, help="(default: 8)")
    cli.add_argument("--min-free-gib", type=at_least(0), default=20.0, help="(default: 20)")
    cli.add_argument(
        "--path",
        dest="paths",
        action="append",
        type=Path,
        default=[],
        help="A filesystem whose free space matters (repeatable). Default: / and /var/lib/docker.",
    )
    cli.add_argument(
        "--gpu-image", default=DEFAULT_GPU_IMAGE, help=f"Image for the GPU-in-Docker check ({DEFAULT_GPU_IMAGE})."
    )
    cli.add_argument("--timeout", type=at_least(0.1), default=60.0, help="Per command, in seconds (default: 60).")
    cli.add_argument("--json", dest="as_json", action="store_true", help="Print the findings as JSON instead of text.")
    return cli


SG_MARKER = "FACTORY_DOCTOR_IN_SG"


def docker_group_command(argv: Sequence[str]) -> list[str] | None:
    """The `sg docker` command that re-runs the doctor with the docker group this process lacks, or None.

    None when the process is root, already has the group, the user is not a member in /etc/group, or it already
    ran through sg once.
    """
    if os.environ.get(SG_MARKER) or os.geteuid() == 0 or shutil.which("sg") is None:
        return None
    try:
        group = grp.getgrnam("docker")
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return None
    if group.gr_gid in os.getgroups() or user not in group.gr_mem:
        return None
    return ["sg", "docker", "-c", shlex.join([sys.executable, *argv])]


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    script = Path(sys.argv[0]).resolve()
    again = docker_group_command([str(script), *(sys.argv[1:] if argv is None else argv)])
    if again is not None and script.is_file():
        env = {**os.environ, SG_MARKER: "1"}
        return subprocess.run(again, env=env, stdin=subprocess.DEVNULL, check=False).returncode
    selected = args.only or list(CHECKS)
    services = args.services or [parse_service(spec) for spec in DEFAULT_SERVICES]
    findings: list[Finding] = []
    if "memory" in selected:
        findings += check_memory(Path("/proc/meminfo"), Path("/proc/version"), args.min_memory_gib)
    if "network" in selected:
        findings += check_network(services, min(args.timeout, 5.0))
    if "gpu" in selected:
        findings += check_gpu(run_command, args.gpu_image, args.timeout)
    if "disk" in selected:
        paths = args.paths or [Path("/"), Path("/var/lib/docker")]
        findings += check_disk(run_command, paths, args.min_free_gib, args.timeout)
    failed = [f for f in findings if f.status == Status.FAIL]
    if args.as_json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        for finding in findings:
            print(render(finding))
        print(f"doctor: {len(failed)} of {len(findings)} findings failed" if failed else "doctor: all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
