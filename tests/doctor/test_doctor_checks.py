"""The doctor's memory check on real /proc-format files: the WSL remedy differs from bare metal's."""

from __future__ import annotations

from pathlib import Path

from factory_doctor import Status, check_memory, read_meminfo

MEMINFO = "MemTotal:        {total} kB\nMemFree:          100000 kB\nMemAvailable:    {avail} kB\n"
WSL_VERSION = "Linux version 5.15.167.4-microsoft-standard-WSL2 (root@f9c826d3017f) (gcc (GCC) 11.2.0) #1 SMP\n"
METAL_VERSION = "Linux version 6.8.0-45-generic (buildd@lcy02-amd64-075) #45-Ubuntu SMP\n"


def write(tmp_path: Path, total_gib: float, version: str) -> tuple[Path, Path]:
    meminfo, ver = tmp_path / "meminfo", tmp_path / "version"
    meminfo.write_text(MEMINFO.format(total=int(total_gib * 1024 * 1024), avail=int(total_gib * 512 * 1024)))
    ver.write_text(version)
    return meminfo, ver


def test_read_meminfo_in_bytes(tmp_path):
    meminfo, _ = write(tmp_path, 2, METAL_VERSION)
    assert read_meminfo(meminfo)["MemTotal"] == 2 * 1024**3


def test_wsl_below_cap_points_at_wslconfig(tmp_path):
    [finding] = check_memory(*write(tmp_path, 7.7, WSL_VERSION), min_gib=16)
    assert finding.status == Status.FAIL
    assert "7.7 GiB total" in finding.saw and "WSL2" in finding.saw
    assert ".wslconfig" in finding.todo and "memory=20GB" in finding.todo and "wsl --shutdown" in finding.todo


def test_bare_metal_below_threshold_does_not_mention_wsl(tmp_path):
    [finding] = check_memory(*write(tmp_path, 7.7, METAL_VERSION), min_gib=16)
    assert finding.status == Status.FAIL
    assert "not WSL" in finding.saw and ".wslconfig" not in finding.todo


def test_enough_memory_passes(tmp_path):
    [finding] = check_memory(*write(tmp_path, 24, WSL_VERSION), min_gib=16)
    assert finding.status == Status.OK and finding.todo == ""


def test_unreadable_meminfo_is_a_failure_not_a_traceback(tmp_path):
    [finding] = check_memory(tmp_path / "missing", tmp_path / "version", min_gib=1)
    assert finding.status == Status.FAIL and "cannot read" in finding.saw
