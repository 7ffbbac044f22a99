"""`molecule test` for every scenario under ansible/molecule/: converge, idempotence (changed=0), testinfra verify.

The instances are privileged systemd containers run by podman from a Debian 12 rootfs that
scripts/debian-rootfs.sh debootstraps once per machine (cached in .cache/; no image registry is reachable).
Inside them Debian's docker.io and docker compose run for real; see ansible/README.md for what is only checked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible_harness import ANSIBLE_DIR, REPO, tool, tool_env

pytestmark = [pytest.mark.molecule, pytest.mark.slow]

CONTAINERS_CONF = ANSIBLE_DIR / "molecule" / "containers.conf"
SCENARIOS = sorted(p.parent.name for p in (ANSIBLE_DIR / "molecule").glob("*/molecule.yml"))
# The secrets the default scenario hands to ci_stack: they must never show up in Ansible's output.
SECRETS = (
    "molecule-admin-password-1234",
    "molecule-frp-token-5678",
    "molecule-jenkins-admin-9012",
    "molecule-github-token-3456",
    "6d6f6c6563756c652d776562686f6f6b2d7365637265742d3738393031323334",
)


def _missing_tools() -> list[str]:
    needed = ["podman", "runc", "debootstrap"]
    return [name for name in needed if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists()]


@pytest.fixture(scope="session")
def base_image() -> tuple[str, str]:
    """(rootfs tarball, podman image): built once per machine, reused by every scenario and later runs."""
    missing = _missing_tools()
    if missing or os.geteuid() != 0:
        pytest.skip(
            f"needs root and {', '.join(missing) or 'podman, runc, debootstrap'} "
            "(apt-get install $(cat scripts/apt/ansible.txt))"
        )
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "debian-rootfs.sh"), "--podman-image", "localhost/ai-eval-factory/debian12"],
        env=tool_env(CONTAINERS_CONF=str(CONTAINERS_CONF)),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    tarball, image = done.stdout.split()
    return tarball, image


@pytest.fixture(scope="session")
def vendor_repos(base_image) -> str:
    """Stand-ins for Docker's and NVIDIA's signed apt repositories: built once per machine (cached in .cache/)."""
    done = subprocess.run(
        ["bash", str(ANSIBLE_DIR / "molecule" / "vendor-repos" / "build.sh")],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.strip()


def test_scenarios_exist():
    assert "default" in SCENARIOS


def test_rootfs_script_is_safe_to_call_concurrently(base_image):
    # Other tests (the release pipeline's `docker import`) call the same script: concurrent callers must all get
    # the one cached tarball, and stdout must carry only the path.
    script = ["bash", str(REPO / "scripts" / "debian-rootfs.sh")]
    callers = [subprocess.Popen(script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [caller.communicate(timeout=600) for caller in callers]
    assert all(caller.returncode == 0 for caller in callers), outputs
    assert [out for out, _ in outputs] == [base_image[0] + "\n"] * 3
    assert Path(base_image[0]).stat().st_size > 50 * 1024 * 1024


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario, base_image, vendor_repos, tmp_path):
    tarball, image = base_image
    molecule = tool("molecule")
    assert molecule, "molecule is not installed: pip install -e '.[ansible]'"
    result = subprocess.run(
        [molecule, "test", "--scenario-name", scenario],
        cwd=ANSIBLE_DIR,
        env=tool_env(
            CONTAINERS_CONF=str(CONTAINERS_CONF),
            MOLECULE_IMAGE=image,
            ROOTFS_TARBALL=tarball,
            VENDOR_REPOS=vendor_repos,
        ),
        capture_output=True,
        text=True,
        timeout=1700,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    (tmp_path / "molecule.log").write_text(output)  # kept by pytest's tmp_path retention, for a failure's whole story
    assert result.returncode == 0, output[-12000:]
    # molecule fails the run on a second converge with changes; make sure both steps really ran.
    for step in ("converge", "idempotence", "verify"):
        assert re.search(rf"{step}: Executed: Successful", output), f"{step} did not run: {output[-4000:]}"
    if scenario == "default":
        check = check_run(re.sub(r"\x1b\[[0-9;]*m", "", result.stdout))
        # --check on the converged host: nothing would change, and the probes really ran (no claim unchecked).
        assert re.search(r"factory-debian12\s*:.*\bchanged=0\b", check), check[-6000:]
        assert "[OK  ] disk/docker: docker system df:" in check, check[-6000:]
        assert "NVIDIA Container Toolkit skipped" not in check, check[-6000:]
        # The WSL branches ran: the preflight read the Windows driver, the toolkit checked its CDI spec.
        flat = " ".join(output.split())
        assert "WSL 2 (Windows driver 576.02" in flat, flat[-6000:]
        assert "mounts /usr/lib/wsl/lib/libdxcore.so: the CDI path can reach the GPU" in flat, flat[-6000:]
    leaked = [secret for secret in SECRETS if secret in output]
    assert not leaked, "a secret reached Ansible's output: a task lacks no_log"


def check_run(stdout: str) -> str:
    """What the last `check` step's playbook printed, with its recap (check_mode_markers tag it "[CHECK MODE]").

    Each playbook run ends with one PLAY RECAP; the first check ran on the fresh host, the last on the converged one.
    """
    runs = stdout.split("PLAY RECAP")
    checks = [i for i, run in enumerate(runs[:-1]) if "[CHECK MODE]" in run]
    assert checks, "the check step did not run"
    last = checks[-1]
    recap = runs[last + 1]
    return runs[last] + "PLAY RECAP" + recap[: recap.find("TASKS RECAP") if "TASKS RECAP" in recap else len(recap)]
