"""scripts/debian-rootfs.sh cleans up after a build that was killed: its folder and the /proc that debootstrap
mounted inside it (seen on this machine: a build killed by a timeout left `.cache/rootfs-build.*/root/proc`
mounted for hours). No debootstrap runs here: the cache already holds the tarball, so only the clean-up is
exercised."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "debian-rootfs.sh"


def _cached_tarball(cache: Path) -> Path:
    """The tarball name the script computes (`echo "$recipe $suite $packages" | sha256sum | cut -c1-12`)."""
    text = SCRIPT.read_text()
    values = {k: re.search(rf'^{k}="?([^"\n]+)"?$', text, re.MULTILINE) for k in ("recipe", "suite", "packages")}
    assert all(values.values()), values
    line = " ".join(m.group(1) for m in values.values() if m) + "\n"
    tarball = cache / f"debian12-rootfs-{hashlib.sha256(line.encode()).hexdigest()[:12]}.tar"
    tarball.write_bytes(b"not empty")
    return tarball


def _mounted(path: Path) -> bool:
    return any(line.split()[1] == str(path) for line in Path("/proc/self/mounts").read_text().splitlines())


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_killed_builds_folder_and_its_mounts_are_removed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    tarball = _cached_tarball(cache)
    stale = cache / "rootfs-build.Abc123"
    proc = stale / "root" / "proc"
    proc.mkdir(parents=True)
    (stale / "root" / "etc").mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(proc)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount here: {mounted.stderr.strip()}")
    try:
        (proc / "inside-the-mount").write_text("x")
        done = subprocess.run(["bash", str(SCRIPT)], env=os.environ | {"ROOTFS_CACHE_DIR": str(cache)},
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == str(tarball)
        assert not _mounted(proc), "the stale build's mount is still there"
        assert not stale.exists(), done.stderr
        assert f"removing {stale}" in done.stderr
    finally:
        if _mounted(proc):
            subprocess.run(["umount", "-l", str(proc)], check=False)
