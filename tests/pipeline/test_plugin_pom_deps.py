"""scripts/ci-pipeline/plugin-pom-deps.py reads what a plugin release declares (the MANIFEST's Plugin-Dependencies
and Jenkins-Version that maven-hpi-plugin writes) from its pom at the release tag, with Maven's rules: properties,
the nearest dependencyManagement wins, a BOM's own entries over the BOMs it imports, test/provided scopes and
library jars left out. Fixtures are real git repositories laid out as the mirrors are (<mirror>/<owner>+<name>/repo)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import load_module
from tests.pipeline.conftest import REPO

TOOL = load_module(REPO / "scripts" / "ci-pipeline" / "plugin-pom-deps.py", "plugin_pom_deps")

HEAD = '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'


def dep(artifact: str, *, group: str = "io.jenkins.plugins", extra: str = "") -> str:
    return f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>{extra}</dependency>"


def git_repo(path: Path, files: dict[str, str], tag: str) -> Path:
    """A bare-style git directory at path/repo holding `files` in one commit tagged `tag`."""
    work = path / "work"
    work.mkdir(parents=True)
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    env = ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "add", "."], check=True)
    subprocess.run(["git", "-C", str(work), *env, "commit", "-qm", "release"], check=True)
    subprocess.run(["git", "-C", str(work), *env, "tag", tag], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(path / "repo")], check=True)
    return path / "repo"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("mirror")
    weekly = (
        f"{HEAD}<artifactId>bom-weekly</artifactId><properties><folder.version>6.2</folder.version></properties>"
        "<dependencyManagement><dependencies>"
        f"{dep('cloudbees-folder', group='org.jenkins-ci.plugins', extra='<version>${folder.version}</version>')}"
        f"{dep('structs', group='org.jenkins-ci.plugins', extra='<version>300</version>')}"
        f"{dep('casc', extra='<version>2000</version>')}"
        f"{dep('junit', extra='<version>1400</version>')}"
        "</dependencies></dependencyManagement></project>"
    )
    line = (
        f"{HEAD}<artifactId>bom-2.500.x</artifactId><properties><folder.version>6.1</folder.version></properties>"
        "<dependencyManagement><dependencies>"
        f"{dep('bom-weekly', group='${project.groupId}', extra='<version>${project.version}</version><type>pom</type><scope>import</scope>')}"
        f"{dep('cloudbees-folder', group='org.jenkins-ci.plugins', extra='<version>${folder.version}</version>')}"
        "</dependencies></dependencyManagement></project>"
    )
    git_repo(tmp_path / "jenkinsci+bom", {"bom-weekly/pom.xml": weekly, "bom-2.500.x/pom.xml": line}, "100.vabc")
    plugin = (
        f"{HEAD}<artifactId>demo</artifactId>"
        "<properties><jenkins.baseline>2.500</jenkins.baseline><jenkins.version>${jenkins.baseline}.3</jenkins.version>"
        "<own.version>7</own.version></properties>"
        "<dependencyManagement><dependencies>"
        f"{dep('bom-${jenkins.baseline}.x', group='io.jenkins.tools.bom', extra='<version>100.vabc</version><type>pom</type><scope>import</scope>')}"
        f"{dep('structs', group='org.jenkins-ci.plugins', extra='<version>310</version>')}"
        "</dependencies></dependencyManagement><dependencies>"
        f"{dep('cloudbees-folder', group='org.jenkins-ci.plugins')}"
        f"{dep('structs', group='org.jenkins-ci.plugins')}"
        f"{dep('casc', extra='<optional>true</optional>')}"
        f"{dep('junit', extra='<scope>test</scope>')}"
        f"{dep('sibling', extra='<version>${own.version}</version>')}"
        f"{dep('guava', group='com.google.guava', extra='<version>33</version>')}"
        "</dependencies></project>"
    )
    git_repo(tmp_path / "jenkinsci+demo-plugin", {"pom.xml": plugin}, "demo-1.2")
    broken = f"{HEAD}<artifactId>broken</artifactId><dependencies>{dep('orphan')}</dependencies></project>"
    git_repo(tmp_path / "jenkinsci+broken-plugin", {"pom.xml": broken}, "broken-1.0")
    return tmp_path


def test_a_release_declares_what_maven_resolves(mirror: Path) -> None:
    entry = TOOL.read_release(
        mirror / "jenkinsci+demo-plugin" / "repo",
        "demo-1.2",
        "pom.xml",
        "1.2",
        mirror / "jenkinsci+bom" / "repo",
        {"sibling"},
    )
    # cloudbees-folder: the line's own 6.1 over bom-weekly's 6.2 (an import's properties stay its own);
    # structs: the plugin's own dependencyManagement over the BOM; junit (test scope) and guava (a jar) left out.
    assert entry["requires"] == {"cloudbees-folder": "6.1", "sibling": "7", "structs": "310"}
    assert entry["optional"] == {"casc": "2000"}
    assert entry["jenkins"] == "2.500.3"
    assert entry["exact"] is True
    assert entry["source"] == "jenkinsci/demo-plugin demo-1.2:pom.xml (versions from bom-2.500.x:100.vabc)"


def test_a_missing_release_or_an_unresolved_version_is_an_error_not_a_guess(
    mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bom = str(mirror / "jenkinsci+bom" / "repo")
    repo = str(mirror / "jenkinsci+demo-plugin" / "repo")
    assert TOOL.main(["--repo", repo, "--tag", "demo-1.2", "--bom", bom, "--plugins", "sibling"]) == 0
    assert '"version": "1.2"' in capsys.readouterr().out
    assert TOOL.main(["--repo", repo, "--tag", "demo-9", "--bom", bom, "--plugins", "sibling"]) == 1
    assert "demo-9" in capsys.readouterr().err
    broken = str(mirror / "jenkinsci+broken-plugin" / "repo")
    assert TOOL.main(["--repo", broken, "--tag", "broken-1.0", "--bom", bom, "--plugins", "orphan"]) == 1
    assert "no version for orphan" in capsys.readouterr().err
