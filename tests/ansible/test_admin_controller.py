"""The admin's controller (scripts/admin-controller.sh, the README's step before `ansible-playbook -K ansible/site.yml`).

Static: the `admin` extra holds only ansible-core; ansible/requirements.yml names exactly the collections ansible/
uses, at the versions the pinned `ansible` package bundles (what the tests lint and run). For real (root, under the
heavy-test lock): from a bare Debian 12 rootfs (scripts/debian-rootfs.sh: python3 without python3-venv, PEP 668's
EXTERNALLY-MANAGED in place) in a chroot, the script installs the controller, and the README's command with the
untouched local inventory stops in the preflight before anything is installed, naming every missing input.
Ubuntu's own images cannot be fetched here (only Debian's mirror is reachable): Debian 12 stands in for them, and
the script's branch for 22.04 (python3.11 from apt) is the same apt path with another package name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from ansible_harness import ANSIBLE_DIR, BIN, REPO


def test_the_admin_extra_is_ansible_core_alone():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [re.split(r"[<>=!~ ]", r)[0] for r in extras["admin"]] == ["ansible-core"]


def test_requirements_name_exactly_the_collections_ansible_uses_at_the_pinned_versions():
    used = set()
    for path in ANSIBLE_DIR.rglob("*.yml"):
        used |= {
            ".".join(m.split(".")[:2])
            for m in re.findall(r"\b(?:community|ansible)\.[a-z_]+\.[a-z_0-9]+", path.read_text())
        }
    used.discard("ansible.builtin")
    wanted = {
        c["name"]: str(c["version"])
        for c in yaml.safe_load((ANSIBLE_DIR / "requirements.yml").read_text())["collections"]
    }
    assert set(wanted) == used
    bundled = BIN.parent / "lib"
    for name, version in wanted.items():
        [manifest] = bundled.glob(
            "python3*/site-packages/ansible_collections/" + name.replace(".", "/") + "/MANIFEST.json"
        )
        assert json.loads(manifest.read_text())["collection_info"]["version"] == version, name


def readme_steps(path: Path) -> tuple[str, str]:
    """The README's controller step and its local play command, as written in its bash block that has them."""
    blocks = [b for b in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S) if "admin-controller.sh" in b]
    assert blocks, path
    lines = [line.split("#")[0].strip() for line in blocks[0].splitlines()]
    [controller] = [line for line in lines if "scripts/admin-controller.sh" in line]
    [play] = [line for line in lines if line == "ansible-playbook -K ansible/site.yml"]
    return controller, play


def test_readme_names_the_controller_step():
    text = (ANSIBLE_DIR / "README.md").read_text()
    assert "scripts/admin-controller.sh" in text and "pip install -e '.[ansible]'" not in text
    # One step for both READMEs: the main README's admin block says exactly what ansible/README.md says.
    main = REPO / "README.md"
    assert readme_steps(ANSIBLE_DIR / "README.md") == readme_steps(main)
    assert "pip install -e '.[ansible]'" not in main.read_text()


@pytest.mark.molecule
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_controller_from_a_bare_debian_rootfs_then_the_preflight_stops_before_installing(tmp_path):
    if os.geteuid() != 0 or (shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists()):
        pytest.skip("needs root and debootstrap (apt-get install $(cat scripts/apt/ansible.txt))")
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "debian-rootfs.sh")], capture_output=True, text=True, timeout=900
    )
    assert built.returncode == 0, built.stderr[-3000:]
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "-xf", built.stdout.strip()], check=True)
    assert not (root / "usr/lib/python3.11/ensurepip").exists()  # no python3-venv
    assert (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").exists()  # PEP 668
    work = root / "srv" / "factory"
    work.mkdir(parents=True)
    for name in ("pyproject.toml", "constraints.txt", "ansible.cfg", "ansible", "scripts"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, work / name)
    shutil.copy2("/etc/resolv.conf", root / "etc" / "resolv.conf")
    # The host's trust store and package-index settings: an admin behind a TLS-inspecting proxy has its CA in the
    # system store, and this machine reaches PyPI only through such a proxy (never a registry host named here).
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_ca.exists():
        shutil.copy2(host_ca, root / "etc" / "ssl" / "certs" / "host-ca-certificates.crt")
    index_env = {k: v for k, v in os.environ.items() if k.startswith("PIP_INDEX") or k.lower().endswith("_proxy")}
    if host_ca.exists():
        ca = "/etc/ssl/certs/host-ca-certificates.crt"
        index_env |= {"PIP_CERT": ca, "SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca}
    mounts = [
        ("proc", root / "proc", ["-t", "proc"]),
        ("/dev", root / "dev", ["--bind"]),
        ("/sys", root / "sys", ["--bind"]),
    ]
    for source, target, options in mounts:
        subprocess.run(["mount", *options, source, str(target)], check=True)
    try:

        def chroot(script: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["chroot", str(root), "bash", "-c", script],
                input="\n",
                capture_output=True,
                text=True,
                timeout=900,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8", **index_env},
            )

        # The README's controller step, then its play command, as written (one shell, as an admin types them).
        controller, play = readme_steps(ANSIBLE_DIR / "README.md")
        run = chroot(f"cd /srv/factory && {controller} && echo CONTROLLER-READY >&2 && {play}")
        assert "CONTROLLER-READY" in run.stderr, run.stdout[-3000:] + run.stderr[-3000:]
        assert "python3.11-venv" in run.stderr  # the missing venv support was installed, not assumed
        assert (root / "srv/factory/.venv-admin/bin/ansible-playbook").exists()
        # With the untouched local inventory the play stops in the preflight, before anything is installed.
        text = " ".join((run.stdout + run.stderr).split())
        assert run.returncode != 0
        assert "Preflight: nothing was installed or changed" in text, text[-4000:]
        for name in ("ci_stack_release_repo_url", "ci_stack_frpc_server_addr", "ci_stack_webhook_secret"):
            assert name in text, name
        assert not (root / "etc" / "apt" / "sources.list.d" / "docker.sources").exists()
        assert chroot("dpkg-query -W docker-ce").returncode != 0
    finally:
        for _, target, _ in reversed(mounts):
            subprocess.run(["umount", "-l", str(target)], check=False)
