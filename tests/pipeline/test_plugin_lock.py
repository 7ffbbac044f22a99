"""The Jenkins plugin lock: jenkins/plugins.txt pins the full closure of the requested plugins, computed from the
dependency data in jenkins/plugin-lock.json (scripts/ci-pipeline/plugin-lock.py), so two builds of the image get
the same plugins and jenkins-plugin-cli (--latest false) resolves nothing on its own.

No update center is reachable here: the data was read from each plugin's pom.xml at its release (see the file's
`about`); these tests hold plugins.txt and the data to each other and to Jenkins' own rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import load_module
from tests.pipeline.conftest import REPO

LOCK = REPO / "jenkins" / "plugin-lock.json"
PLUGINS = REPO / "jenkins" / "plugins.txt"


TOOL = load_module(REPO / "scripts" / "ci-pipeline" / "plugin-lock.py", "plugin_lock")


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


# The entries whose own release could not be read (each says why in the lock): configuration-as-code >= 2065
# (strict secret resolution, see test_jenkins_config.py) needs snakeyaml-api >= 2.5-149, whose pom is not in the
# mirrors (its data is 2.5-143's); matrix-auth's newest readable release, 3.2.8, has a security advisory.
KNOWN_INEXACT = {"snakeyaml-api": "2.5-149.v72471e9c6371", "matrix-auth": "3.3"}
# Published advisories against plugins of the closure whose affected range reaches a release one might pin for
# readable data: plugin -> (advisory, last affected version), from jenkins-infra/update-center2
# resources/warnings.json (as of 2026-07-16).
ADVISORIES = {"matrix-auth": ("SECURITY-3676", "3.2.9")}


def test_every_entry_is_read_from_the_release_it_pins(lock: dict[str, Any]) -> None:
    """An entry's dependencies are those its own release declares: read from that release's pom (`exact`), at the
    tag (or release commit) its `source` names. Data borrowed from an earlier release leaves the pinned release's
    declared dependencies and minimums unchecked; the one known exception is named, with its reason in the lock."""
    inexact = {name: entry["version"] for name, entry in lock["plugins"].items() if entry["exact"] is not True}
    assert inexact == KNOWN_INEXACT, "dependency data not read from the pinned release"
    for name in inexact:
        assert "why_not_exact" in lock["plugins"][name], name
    for name, entry in lock["plugins"].items():
        if name in inexact:
            continue
        repository, _, rest = entry["source"].partition(" ")
        tag = rest.split(":", 1)[0]
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", repository), (name, entry["source"])
        if re.fullmatch(r"[0-9a-f]{40}", tag):  # a release commit: a CD version ends in that commit's hash
            hash_ = re.search(r"\.v([0-9a-f_]+)$", entry["version"])
            assert hash_ and tag.startswith(hash_.group(1).replace("_", "")), (name, tag, entry["version"])
        else:
            assert tag == entry["version"] or tag.endswith("-" + entry["version"]), (name, tag, entry["version"])


def test_no_pin_is_affected_by_a_known_advisory() -> None:
    pins = pinned()
    for name, (advisory, last_affected) in ADVISORIES.items():
        assert TOOL.version_key(pins[name]) > TOOL.version_key(last_affected), f"{name} {pins[name]}: {advisory}"


def test_pins_older_than_the_bom_are_listed(lock: dict[str, Any]) -> None:
    """Pinning readable releases puts some plugins below the BOM line's versions: `older_than_bom` says which, so
    a reader sees the cost, and the list cannot go stale."""
    for name, bom_version in lock["older_than_bom"].items():
        assert TOOL.version_key(lock["plugins"][name]["version"]) < TOOL.version_key(bom_version), name


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
        # Jenkins' VersionNumber (Maven's ComparableVersion): `-` opens a sub-list, which sorts below a number,
        # so a point release is newer than any build of the release before it.
        ("9.9-185.va_6c6b_3348b_c3", "9.9.1-189.vb_5ef2964da_91"),
        ("2.22-19.v10a_a_582ea_26e", "2.22.1-443.vc91f592333c4"),
        ("1402.v94c9ce464861", "1402.1405.vc96e74964250"),
        ("9.9", "9.9-185.va_6c6b_3348b_c3"),
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
