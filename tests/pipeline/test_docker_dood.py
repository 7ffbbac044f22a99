"""Docker-out-of-Docker for real: the test starts its own Docker daemon (Debian's docker.io) on a private
socket and data root, builds images from a locally imported base (no registry is reachable), and checks
the contract the Jenkins container relies on:

- a non-root container with the host's socket mounted and the socket's group added at run time starts a
  sibling container on the host daemon; without the group it is refused;
- scripts/ci-pipeline/run-local-eval.sh runs `evaluator run` in the commit's image as a sibling container,
  moving the suite in and the results out with `docker cp` (no bind mount), and passes the exit code on.

The evaluator image itself is built and run in test_evaluator_image.py; here a stand-in keeps this test fast.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline.conftest import MERGE_SHA, REPO

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SOCKET_GID = 2375  # the group of our daemon's socket, as `stat -c %g /var/run/docker.sock` gives on a host
DOCKERD = shutil.which("dockerd")
DOCKER_CLI = "/usr/bin/docker"  # Debian's docker.io client: the one copied into the test image
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "starting dockerd needs root"
    for path, package in ((DOCKERD, "docker.io"), (DOCKER_CLI, "docker.io"), (BUSYBOX, "busybox-static")):
        if not path or not Path(path).exists():
            return f"{path or 'dockerd'} not installed (apt package {package}, see scripts/apt/pipeline.txt)"
    return None


@pytest.fixture(scope="module")
def docker_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private dockerd: own socket, data root, exec root; no bridge or iptables changes to the host."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("dockerd")
    sock = root / "docker.sock"
    log = (root / "dockerd.log").open("wb")
    daemon = subprocess.Popen(
        [
            str(DOCKERD), "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "docker.pid"), "--host", f"unix://{sock}", "--group", str(SOCKET_GID),
            "--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    env = {
        "PATH": os.environ["PATH"],
        "DOCKER_HOST": f"unix://{sock}",
        "DOCKER_BUILDKIT": "0",
        "HOME": str(root),
        "DOCKER_CONFIG": str(root / "client"),
    }
    try:
        for _ in range(120):  # readiness poll (up to ~60 s), not a timing assertion
            if daemon.poll() is not None:
                pytest.fail(f"dockerd exited: {(root / 'dockerd.log').read_text()[-2000:]}")
            if subprocess.run([DOCKER_CLI, "info"], env=env, capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"dockerd did not come up: {(root / 'dockerd.log').read_text()[-2000:]}")
        env["SOCKET"] = str(sock)
        yield env
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=10)
        log.close()
        for line in reversed(Path("/proc/mounts").read_text().splitlines()):
            mountpoint = line.split()[1]
            if mountpoint.startswith(str(root)):
                subprocess.run(["umount", "-l", mountpoint], check=False)
        shutil.rmtree(root, ignore_errors=True)


def docker(env: dict[str, str], *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([DOCKER_CLI, *args], env=env, input=input, capture_output=True, timeout=180, check=False)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def base_image(docker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """busybox plus the Docker CLI with its shared libraries: a tiny rootfs, imported, not pulled."""
    tarball = tmp_path_factory.mktemp("rootfs") / "rootfs.tar"
    libs = subprocess.run(["ldd", DOCKER_CLI], capture_output=True, text=True, check=True).stdout
    files = {"/bin/busybox": BUSYBOX, "/usr/bin/docker": DOCKER_CLI}
    for token in libs.split():
        if token.startswith("/"):
            files[token] = token
    with tarfile.open(tarball, "w") as tar:
        for directory, mode in (("tmp", 0o1777), ("work", 0o755), ("etc", 0o755)):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        for target, source in files.items():
            tar.add(os.path.realpath(source), arcname=target.lstrip("/"))
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
    ok(docker(docker_env, "import", str(tarball), "local/dood-base:test"))
    return "local/dood-base:test"


@pytest.fixture(scope="module")
def cli_image(docker_env: dict[str, str], base_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Built with `docker build` on the imported base: a non-root user running the Docker CLI (like Jenkins)."""
    context = tmp_path_factory.mktemp("cli-context")
    (context / "Dockerfile").write_text(
        f'FROM {base_image}\nENV HOME=/tmp DOCKER_CONFIG=/tmp/.docker\nUSER 1000:1000\nENTRYPOINT ["/usr/bin/docker"]\n'
    )
    ok(docker(docker_env, "build", "--network", "none", "--tag", "local/dood-cli:test", str(context)))
    return "local/dood-cli:test"


def test_a_container_with_the_socket_and_its_group_starts_a_sibling(
    docker_env: dict[str, str], base_image: str, cli_image: str
) -> None:
    sock = docker_env["SOCKET"]
    inner = ["run", "--name", "dood-sibling", "--label", "dood-test=1", "--network", "none", base_image]
    out = ok(
        docker(
            docker_env, "run", "--rm", "--network", "none", "--volume", f"{sock}:/var/run/docker.sock",
            "--group-add", str(SOCKET_GID), cli_image, *inner, "/bin/busybox", "echo", "sibling-ok",
        )
    )  # fmt: skip
    assert "sibling-ok" in out
    # The sibling lives on the host daemon, next to (not inside) the container that started it.
    names = ok(docker(docker_env, "ps", "--all", "--filter", "label=dood-test=1", "--format", "{{.Names}}"))
    assert names.split() == ["dood-sibling"]
    ok(docker(docker_env, "rm", "dood-sibling"))


def test_without_the_socket_group_the_daemon_refuses(docker_env: dict[str, str], cli_image: str) -> None:
    sock = docker_env["SOCKET"]
    result = docker(
        docker_env, "run", "--rm", "--network", "none", "--volume", f"{sock}:/var/run/docker.sock", cli_image, "ps"
    )
    assert result.returncode != 0
    assert "permission denied" in result.stderr


STAND_IN = """#!/bin/sh
# Stand-in for the evaluator image's entrypoint: `evaluator run SUITE --out DIR --workers W` writes W shard
# folders the way the contract says, then exits with $STANDIN_EXIT. (The real image needs PyPI to build.)
set -e
[ "$1" = run ] && [ "$3" = --out ] && [ "$5" = --workers ]
i=0
while [ "$i" -lt "$6" ]; do
  dir="$4/shard-0000$i"; mkdir -p "$dir"
  cat "$2" > "$dir/suite-seen.yaml"
  echo "$EVAL_RUN_ID $EVAL_COMMIT" > "$dir/env.txt"
  echo "$EVAL_TARGET_BASE_URL $EVAL_TARGET_MODEL $EVAL_JUDGE_BASE_URL $EVAL_JUDGE_MODEL" > "$dir/models.txt"
  i=$((i + 1))
done
id -u > "$4/uid.txt"
exit "${STANDIN_EXIT:-0}"
"""


@pytest.fixture(scope="module")
def stand_in_image(docker_env: dict[str, str], base_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    context = tmp_path_factory.mktemp("stand-in")
    (context / "evaluator").write_text(STAND_IN)
    (context / "evaluator").chmod(0o755)
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nCOPY evaluator /bin/evaluator\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        'RUN ["/bin/sh", "-c", "mkdir -p /work/out /work/suite && chown -R 10001:10001 /work"]\n'
        'USER 10001:10001\nWORKDIR /work\nENTRYPOINT ["/bin/evaluator"]\n'
    )
    tag = f"stand-in/evaluator:{MERGE_SHA}"
    ok(docker(docker_env, "build", "--network", "none", "--tag", tag, str(context)))
    return tag


@pytest.mark.parametrize("exit_code", [0, 4])
def test_run_local_eval_moves_suite_in_and_results_out(
    docker_env: dict[str, str], stand_in_image: str, tmp_path: Path, exit_code: int
) -> None:
    repo = "stand-in/evaluator"
    if exit_code:  # the same image, but its run ends like an infrastructure failure (exit 4)
        repo = "stand-in/evaluator-failing"
        context = tmp_path / "failing"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {stand_in_image}\nENV STANDIN_EXIT={exit_code}\n")
        ok(docker(docker_env, "build", "--network", "none", "--tag", f"{repo}:{MERGE_SHA}", str(context)))
    workspace = tmp_path / "ws"
    (workspace / "suites").mkdir(parents=True)
    (workspace / "suites" / "suite.yaml").write_text("name: tiny\n")
    env = docker_env | {
        "WORKSPACE": str(workspace), "COMMIT": MERGE_SHA, "IMAGE_REPO": repo,
        "EVAL_SUITE": "suites/suite.yaml", "EVAL_WORKERS": "2", "BUILD_NUMBER": "7",
        "EVAL_TARGET_BASE_URL": "http://host.docker.internal:8000/v1", "EVAL_TARGET_MODEL": "target-model",
        # This private daemon has no bridge (--bridge none): the container gets no network at all; on a host the
        # default is the daemon's bridge, never the host's network.
        "EVAL_NETWORK": "none",
    }  # fmt: skip
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "ci-pipeline" / "run-local-eval.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == exit_code, result.stderr
    results = workspace / "results"
    shards = sorted(p.name for p in results.glob("shard-*"))
    assert shards == ["shard-00000", "shard-00001"]
    assert (results / "shard-00001" / "suite-seen.yaml").read_text() == "name: tiny\n"
    assert (results / "shard-00000" / "env.txt").read_text().split() == [f"r7-{MERGE_SHA[:12]}", MERGE_SHA]
    assert (results / "uid.txt").read_text().strip() == "10001"  # the evaluation ran as non-root
    # The job's local-path target reached the container; the judge defaults to the target.
    assert (results / "shard-00000" / "models.txt").read_text().split() == [
        "http://host.docker.internal:8000/v1", "target-model", "http://host.docker.internal:8000/v1", "target-model",
    ]  # fmt: skip
    # The sibling container is gone afterwards.
    assert ok(docker(docker_env, "ps", "--all", "--quiet", "--filter", f"name=eval-r7-{MERGE_SHA[:12]}")) == ""
