"""The Jenkins plugin lock: jenkins/plugins.txt pins the full closure of the requested plugins, computed from the
dependency data in jenkins/plugin-lock.json (scripts/ci-pipeline/plugin-lock.py), so two builds of the image get
the same plugins and jenkins-plugin-cli (--latest false) resolves nothing on its own.

No update center is reachable here: the data was read from each plugin's pom.xml at its release (see the file's
`about`); these tests hold plugins.txt and the data to each other and to Jenkins' own rules."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.pipeline.conftest import REPO

LOCK = REPO / "jenkins" / "plugin-lock.json"
PLUGINS = REPO / "jenkins" / "plugins.txt"


def load_tool() -> ModuleType:
    path = REPO / "scripts" / "ci-pipeline" / "plugin-lock.py"
    spec = importlib.util.spec_from_file_location("plugin_lock", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()


@pytest.fixture(scope="module")
def lock() -> dict[str, Any]:
    return dict(json.loads(LOCK.read_text()))


def pinned() -> dict[str, str]:
    return TOOL.read_plugins_txt(PLUGINS)


def test_plugins_txt_is_exactly_the_closure_of_the_requested_plugins(lock: dict[str, Any]) -> None:
    assert pinned() == TOOL.closure(lock), "regenerate: scripts/ci-pipeline/plugin-lock.py"
    assert PLUGINS.read_text() == TOOL.render(lock), "plugins.txt differs from what plugin-lock.py writes"


def test_every_declared_dependency_is_pinned_at_a_version_it_accepts(lock: dict[str, Any]) -> None:
    assert TOOL.problems(pinned(), lock) == []


def test_every_plugin_has_its_dependency_data_and_fits_the_jenkins_core(lock: dict[str, Any]) -> None:
    core = re.search(
        r"^ARG JENKINS_IMAGE=jenkins/jenkins:([0-9.]+)-", (REPO / "jenkins" / "Dockerfile").read_text(), re.M
    )
    assert core, "jenkins/Dockerfile pins no jenkins/jenkins LTS"
    for name, version in pinned().items():
        entry = lock["plugins"][name]
        assert entry["version"] == version
        assert entry["source"], name
        if entry["jenkins"] != "unknown":
            assert TOOL.version_key(entry["jenkins"]) <= TOOL.version_key(core.group(1)), (
                f"{name} needs Jenkins {entry['jenkins']}"
            )


def test_the_check_catches_a_missing_and_a_too_old_dependency(lock: dict[str, Any]) -> None:
    plugins = pinned()
    without = {k: v for k, v in plugins.items() if k != "workflow-step-api"}
    assert any("workflow-step-api" in p and "missing" in p for p in TOOL.problems(without, lock))
    too_old = plugins | {"credentials": "2.6.1"}
    assert any("credentials" in p and "older" in p for p in TOOL.problems(too_old, lock))
    # An optional dependency may be absent, but if installed it must be recent enough: Jenkins refuses otherwise.
    optional = next((d, v) for e in lock["plugins"].values() for d, v in e["optional"].items() if d in plugins)
    assert any(optional[0] in p for p in TOOL.problems(plugins | {optional[0]: "0.1"}, lock))


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("2.4.1", "2.4.2"),
        ("1421.v99cb_b_2577709", "1424.vc64a_edde7777"),
        ("4.5.14-269.vfa_2321039a_83", "4.5.14-270.va_0000000000"),
        ("2.479.3", "2.580.1"),
        ("1.30", "429"),
        ("2.22.1-443.vc91f592333c4", "2.22.2-445.vdc613f1d8012"),
    ],
)
def test_versions_order_like_jenkins(older: str, newer: str) -> None:
    assert TOOL.version_key(older) < TOOL.version_key(newer)


def test_plugin_cli_resolves_nothing_itself() -> None:
    dockerfile = (REPO / "jenkins" / "Dockerfile").read_text()
    assert re.search(r"jenkins-plugin-cli --plugin-file \S+plugins.txt --latest false", dockerfile)


def test_the_tool_check_mode_agrees(tmp_path: Path, lock: dict[str, Any]) -> None:
    assert TOOL.main(["--check"]) == 0
    stale = tmp_path / "plugins.txt"
    stale.write_text(PLUGINS.read_text().replace("timestamper:", "timestamper:0.1-"))
    assert TOOL.main(["--check", "--plugins", str(stale)]) == 1


def test_the_bom_line_is_the_line_of_the_pinned_core(lock: dict[str, Any]) -> None:
    """The plugin versions come from a jenkinsci/bom line tested against one LTS: the core the image pins must be
    of that line (bom-2.568.x is tested with Jenkins 2.568.1: its sample-plugin/pom.xml at 6916.v15ec97679743)."""
    core = re.search(
        r"^ARG JENKINS_IMAGE=jenkins/jenkins:([0-9.]+)-lts", (REPO / "jenkins" / "Dockerfile").read_text(), re.M
    )
    assert core, "jenkins/Dockerfile pins no jenkins/jenkins LTS"
    line = re.search(r"bom-(\d+\.\d+)\.x", lock["bom"])
    assert line and core.group(1).rsplit(".", 1)[0] == line.group(1), (lock["bom"], core.group(1))
    for default in ("ci_stack_jenkins_image", "ci_stack_agent_image"):
        text = (REPO / "ansible" / "roles" / "ci_stack" / "defaults" / "main.yml").read_text()
        assert re.search(rf"^{default}: \S+:{re.escape(core.group(1))}-\d+$", text, re.M), default


def test_no_unused_webhook_plugin_is_installed() -> None:
    """The github plugin opens /github-webhook/ (a second, unauthenticated way in); the release path uses the
    Generic Webhook Trigger behind the receiver, git, and curl for statuses and comments: it is not installed."""
    plugins = pinned()
    assert "github" not in plugins and "generic-webhook-trigger" in plugins
    for path in [REPO / "Jenkinsfile", *(REPO / "jenkins" / "casc").glob("*.yaml")]:
        assert not re.search(r"githubPush|GitHubPushTrigger|githubProjectProperty", path.read_text()), path
