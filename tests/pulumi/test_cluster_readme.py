"""The README's cluster quickstart: it installs what it uses, its waits return on a failed Job at once, and the run
it launches ends with the report on the operator's disk, through the strict stand-in API server.

No API server, Pulumi CLI or registry here: the Pulumi CLI block is checked for its shape (a pinned version not older
than the SDK, its SHA-256 checked before the archive is opened); the run's part of the quickstart runs as written
against tests/journeys/fake_kubectl.py (admission, object limits, kubectl's own timeouts) with the real renderer.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from factory import manifests
from factory.settings import load_stack
from pulumi_harness import PULUMI_DIR

from tests.journeys import fake_kubectl

REPO = PULUMI_DIR.parent
README = REPO / "README.md"
STAND_IN = """#!/usr/bin/env bash
# kubectl stand-in for the wait block: `wait job/NAME --for=condition=C` returns 0 at once when the Job's fake state
# is C, else sleeps until killed (as a real wait does until its timeout); every other call succeeds.
for arg in "$@"; do case "$arg" in --for=condition=*) want="${arg#--for=condition=}" ;; job/*) job=1 ;; esac; done
case "$3" in
  wait) [ -z "${job:-}" ] && exit 0; [ "${want,,}" = "${FAKE_JOB_STATE,,}" ] && exit 0; sleep 300; exit 1 ;;
  *) exit 0 ;;
esac
"""
# Programs every Debian/Ubuntu workstation has, and the shell's own words.
BASE = {"curl", "echo", "sha256sum", "mkdir", "tar", "export", "git", "date", "cd", "wait", "kill", "local", "if",
        "then", "else", "fi", "[", "}", "{", "wait_job", "return"}  # fmt: skip


def block(marker: str) -> str:
    match = re.search(rf"<!-- {marker}:.*?-->\n```bash\n(.*?)```", README.read_text(), re.S)
    assert match, f"README.md: the cluster quickstart's {marker} block is missing"
    return match.group(1)


def programs(text: str) -> list[str]:
    """The program each command line runs, in order (subshells, `&&` and `|` chains, assignments skipped)."""
    out = []
    text = re.sub(r"\$\([^()]*\)", "X", text.replace("\\\n", " "))  # $(...) substitutions run what they name
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        for part in re.split(r"&&|\|\||\||;|\(|\)", line):
            words = [w for w in shlex.split(part, posix=True) if w] if part.strip() else []
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words.pop(0)
            if words and not words[0].startswith(("-", '"', "$")) and not words[0].endswith("()"):
                out.append(words[0])
    return out


def test_the_quickstart_installs_every_program_it_uses_before_using_it() -> None:
    cli, quickstart = block("pulumi-cli"), block("cluster-quickstart")
    wait = block("wait-job")
    used = programs(cli) + programs(quickstart) + programs(wait)
    installed_by_ansible = {
        "kubectl": REPO / "ansible/roles/minikube/tasks/install.yml",
        "minikube": REPO / "ansible/roles/minikube/tasks/install.yml",
        "docker": REPO / "ansible/roles/docker_engine/tasks",
    }
    for program, role in installed_by_ansible.items():
        text = "".join(f.read_text() for f in ([role] if role.is_file() else sorted(role.glob("*.yml"))))
        assert program in text, f"{role}: does not install {program}, which the quickstart uses"
    for program in set(used) - BASE - set(installed_by_ansible):
        if program == "pulumi":
            assert used.index("pulumi") > used.index("tar"), "pulumi is used before the quickstart installs it"
        elif program == "python":
            assert "scripts/bootstrap.sh" in used[: used.index("python")], "python runs before the venv exists"
        else:
            assert program in ("scripts/bootstrap.sh",), f"README.md: the quickstart uses {program!r}, installs it not"


def test_the_pulumi_cli_is_pinned_checked_and_not_older_than_the_sdk() -> None:
    cli = block("pulumi-cli")
    version = re.search(r"^PULUMI_VERSION=(\d+)\.(\d+)\.(\d+)\b", cli, re.M)
    digest = re.search(r"^PULUMI_SHA256=([0-9a-f]{64})$", cli, re.M)
    assert version and digest, cli
    sdk = re.search(r"^pulumi==(\d+)\.(\d+)\.(\d+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert sdk is not None
    cli_version = tuple(int(x) for x in version.groups())
    assert cli_version >= tuple(int(x) for x in sdk.groups()), "the CLI must not be older than the Python SDK"
    lines = cli.splitlines()
    download = next(i for i, line in enumerate(lines) if line.startswith("curl "))
    check = next(i for i, line in enumerate(lines) if "sha256sum --check" in line)
    unpack = next(i for i, line in enumerate(lines) if line.startswith("mkdir") and "tar -xzf" in line)
    assert download < check < unpack  # the archive is opened only once its checksum matched
    assert "${PULUMI_VERSION}" in lines[download] and "${PULUMI_SHA256}" in lines[check]
    assert "--strict" in lines[check]


def test_the_quickstart_ends_with_the_report_on_the_operators_disk(tmp_path: Path) -> None:
    """The run's part, as written: render, apply server-side, wait, aggregate, collect through the restricted pod."""
    run_id = "run-20250101-000000"
    work = tmp_path / "checkout"
    shutil.copytree(PULUMI_DIR, work / "pulumi", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "evaluator").symlink_to(REPO / "evaluator")
    bin_dir = tmp_path / "bin"
    kubectl = fake_kubectl.install(bin_dir)
    (bin_dir / "git").write_text("#!/bin/sh\necho 0123456789abcdef0123456789abcdef01234567\n")
    (bin_dir / "git").chmod(0o755)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the venv's, as bootstrap.sh puts it
    (bin_dir / "python").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RUN_ID": run_id,
        "IMAGE": "ai-eval-factory/evaluator:0123456789ab",
        "FAKE_KUBE_STATE": str(tmp_path / "state.json"),
        "FAKE_KUBE_VOLUMES": str(tmp_path / "volumes"),
        "FAKE_KUBE_TIME_SCALE": "0.01",
    }
    # What `pulumi up` left: the restricted namespace; what the run's pods wrote: the report on the volume.
    namespace = manifests.long_lived(load_stack(PULUMI_DIR, "dev"))[0]
    (tmp_path / "ns.yaml").write_text(yaml.safe_dump(namespace))
    subprocess.run([str(kubectl), "apply", "-f", str(tmp_path / "ns.yaml")], env=env, check=True)
    written = tmp_path / "volumes" / "eval-results" / run_id
    written.mkdir(parents=True)
    (written / "report.json").write_text(json.dumps({"run_id": run_id}))
    (written / "report.cases.jsonl.gz").write_bytes(b"cases")  # report v5's sidecar travels with it
    quickstart = block("cluster-quickstart")
    launch = quickstart[quickstart.index("(cd pulumi && python -m factory.render") :]
    done = subprocess.run(
        ["bash", "-ec", launch + block("wait-job")], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gate PASSED" in done.stdout
    assert json.loads((work / f"report-{run_id}" / "report.json").read_text()) == {"run_id": run_id}
    assert (work / f"report-{run_id}" / "report.cases.jsonl.gz").read_bytes() == b"cases"


@pytest.mark.parametrize(
    ("state", "expected"),
    [("Complete", "gate PASSED"), ("Failed", "the eval Job failed"), ("Failed", "gate FAILED")],
)
def test_the_documented_wait_returns_at_once_on_either_verdict(tmp_path: Path, state: str, expected: str) -> None:
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir()
    kubectl.write_text(STAND_IN)
    kubectl.chmod(0o755)
    env = {**os.environ, "PATH": f"{kubectl.parent}:{os.environ['PATH']}", "FAKE_JOB_STATE": state, "RUN_ID": "r1"}
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", block("wait-job")], env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 15, "the wait did not return when the Job reached its verdict"
    assert expected in done.stdout, done.stdout + done.stderr


def test_the_documented_wait_gives_up_at_its_timeout_when_no_verdict_comes(tmp_path: Path) -> None:
    """A Job that neither completes nor fails: the function returns non-zero (here: a 1 s timeout)."""
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(STAND_IN.replace("sleep 300; exit 1", 'sleep "${FAKE_TIMEOUT:-300}"; exit 1'))
    kubectl.chmod(0o755)
    function = block("wait-job").split("\nwait_job ", 1)[0]
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "FAKE_JOB_STATE": "Running", "FAKE_TIMEOUT": "1"}
    done = subprocess.run(["bash", "-c", f"{function}\nwait_job x 1s"], env=env, capture_output=True, timeout=30)
    assert done.returncode != 0


def test_every_documented_kubectl_wait_names_its_timeout() -> None:
    """kubectl wait's default is 30 s: shorter than any image pull, rollout or run it waits for."""
    for doc in (README, PULUMI_DIR / "README.md"):
        code = "\n".join(re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S))
        # Commands quoted in prose, those naming what they wait for (a sentence about `kubectl wait` is not one).
        code += "\n" + "\n".join(re.findall(r"`(kubectl [^`]*(?:job|pod|deploy)/[^`]*)`", doc.read_text()))
        for line in code.splitlines():
            if re.search(r"\bkubectl\b.*\bwait\b", line):
                assert "--timeout" in line, f"{doc.name}: {line.strip()}"
