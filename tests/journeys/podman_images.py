"""The evaluator image in podman's own storage, built from `evaluator/Dockerfile` once per source state.

No registry is reachable here, so the Dockerfile's python base is made locally: the project's debootstrapped
Debian 12 rootfs (`scripts/debian-rootfs.sh --podman-image`) plus Debian's `python3-venv` (Python 3.11, as in
the pinned `python:3.11-slim-bookworm`), exactly the recipe of `scripts/ci-pipeline/verify-evaluator-image.sh`
(which builds with a private dockerd; this builds straight into podman's storage, where `podman kube play`
finds it). Everything else is the real Dockerfile, the real constraints and PyPI.

The tag carries a hash of every build input, so a second test session on the same machine reuses the image
and a change to the evaluator rebuilds it. Callers hold `/tmp/factory-heavy.lock` (see `heavy_lock`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "ansible" / "molecule" / "containers.conf"
HEAVY_LOCK = Path("/tmp/factory-heavy.lock")
IMAGE_REPO = "localhost/ai-eval-factory/evaluator"
PYBASE_REPO = "localhost/ai-eval-factory/python-debian12"
_BUILD_INPUTS = ("evaluator/Dockerfile", "pyproject.toml", "constraints.txt", "README.md", ".dockerignore")
_PYBASE_CONTAINERFILE = """\
FROM {rootfs}
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv \\
    && ln -s /usr/bin/python3 /usr/local/bin/python && rm -rf /var/lib/apt/lists/*
COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["python3"]
"""


class CannotBuild(RuntimeError):
    """This machine cannot build or run the image (the message says why); the journey test skips with it."""


def podman_env() -> dict[str, str]:
    """podman with the configuration the Molecule instances use (runc, cgroupfs, file events)."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def why_not_here() -> str | None:
    """None when podman kube play and an image build can run here; else the reason."""
    if os.geteuid() != 0:
        return "podman kube play of these pods, the image build and the network namespace need root"
    for tool, package in (
        ("podman", "podman"),
        ("catatonit", "catatonit"),
        ("debootstrap", "debootstrap"),
        ("nsenter", "util-linux"),
        ("ip", "iproute2"),
    ):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package}, listed in scripts/apt/)"
    return None


@contextmanager
def heavy_lock() -> Iterator[None]:
    """The machine-wide lock every podman/image-build job takes, so two checkouts never collide.

    Already held by the command that started us (`flock /tmp/factory-heavy.lock pytest ...`, as the GUIDE
    says to run heavy jobs by hand, or `FACTORY_HEAVY_LOCK_HELD=1`): taking it again on a new descriptor
    would wait for ourselves forever, so it is not taken twice."""
    if os.environ.get("FACTORY_HEAVY_LOCK_HELD") == "1" or _held_by_an_ancestor(HEAVY_LOCK):
        yield
        return
    with HEAVY_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _held_by_an_ancestor(path: Path) -> bool:
    """True when a flock on `path` is held by this process's parent, grandparent, ... (from /proc/locks)."""
    try:
        inode = path.stat().st_ino
        holders = {
            int(fields[4])
            for fields in (line.split() for line in Path("/proc/locks").read_text().splitlines())
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}")
        }
    except (OSError, ValueError):
        return False
    pid = os.getppid()
    while pid > 1:
        if pid in holders:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return False
    return False


def _podman(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=podman_env(), check=False
    )


def image_exists(ref: str) -> bool:
    return _podman("image", "exists", ref).returncode == 0


def source_key() -> str:
    """A hash of everything `evaluator/Dockerfile` copies or reads."""
    digest = hashlib.sha256()
    files = [REPO / name for name in _BUILD_INPUTS]
    files += sorted(p for p in (REPO / "evaluator").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _python_base() -> str:
    rootfs = subprocess.run(
        [str(REPO / "scripts" / "debian-rootfs.sh"), "--podman-image", "ai-eval-factory/debian12"],
        capture_output=True,
        text=True,
        timeout=1200,
        env=podman_env(),
        check=False,
    )
    if rootfs.returncode != 0:
        raise CannotBuild(f"scripts/debian-rootfs.sh failed: {rootfs.stderr[-2000:]}")
    rootfs_image = rootfs.stdout.strip().splitlines()[-1]
    tag = f"{PYBASE_REPO}:{rootfs_image.rsplit(':', 1)[-1]}"
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="journey-pybase-") as work:
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", Path(work) / "host-ca.crt")
        (Path(work) / "Containerfile").write_text(_PYBASE_CONTAINERFILE.format(rootfs=rootfs_image))
        built = _podman("build", "--network", "host", "--tag", tag, work)
    if built.returncode != 0:
        raise RuntimeError(f"building the python base failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}")
    return tag


def evaluator_image() -> str:
    """The evaluator image for the current sources, built unless podman already holds it. Needs the lock."""
    reason = why_not_here()
    if reason is not None:
        raise CannotBuild(reason)
    tag = f"{IMAGE_REPO}:journey-{source_key()}"
    if image_exists(tag):
        return tag
    base = _python_base()
    built = _podman(
        "build",
        "--network",
        "host",
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "--file",
        str(REPO / "evaluator" / "Dockerfile"),
        "--tag",
        tag,
        str(REPO),
        timeout=1500,
    )
    if built.returncode != 0:
        raise RuntimeError(f"building evaluator/Dockerfile failed:\n{built.stdout[-4000:]}\n{built.stderr[-3000:]}")
    # Images of earlier sources (512 MB each) would pile up: keep only the current one.
    listed = _podman("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPO).stdout.split()
    for old in listed:
        if old != tag and old.startswith(f"{IMAGE_REPO}:journey-"):
            _podman("rmi", old)
    return tag


if __name__ == "__main__":  # by hand: flock /tmp/factory-heavy.lock python -m tests.journeys.podman_images
    print(evaluator_image())
