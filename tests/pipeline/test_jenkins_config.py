"""jenkins/casc.yaml and jenkins/plugins.txt: secrets only by reference, no anonymous access, pinned plugins."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.pipeline.conftest import REPO

CASC = REPO / "jenkins" / "casc.yaml"
PLUGINS = REPO / "jenkins" / "plugins.txt"
SECRET_FIELDS = {"secret", "password", "secretBytes", "privateKey", "token", "passphrase", "apiToken"}
SECRET_REF = re.compile(r"^\$\{(readFile|readFileBase64):/run/secrets/[A-Za-z0-9._-]+\}$|^\$\{[A-Z][A-Z0-9_]*\}$")
REQUIRED_PLUGINS = {
    "configuration-as-code", "job-dsl", "workflow-aggregator", "git", "github", "generic-webhook-trigger",
    "junit", "htmlpublisher", "matrix-auth", "credentials-binding", "lockable-resources",
    "pipeline-milestone-step", "timestamper",
}  # fmt: skip


@pytest.fixture(scope="module")
def casc() -> dict[str, Any]:
    data = yaml.safe_load(CASC.read_text())
    assert isinstance(data, dict)
    return data


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def test_every_secret_is_a_reference_never_a_literal(casc: dict[str, Any]) -> None:
    secrets = [(path, value) for path, value in walk(casc) if path.rsplit(".", 1)[-1] in SECRET_FIELDS]
    assert len(secrets) >= 6  # admin password + the credentials below
    for path, value in secrets:
        assert isinstance(value, str) and SECRET_REF.fullmatch(value), f"{path} is not a secret reference: {value!r}"


def test_the_credentials_the_pipeline_uses_exist(casc: dict[str, Any]) -> None:
    creds = casc["credentials"]["system"]["domainCredentials"][0]["credentials"]
    ids = {next(iter(c.values()))["id"] for c in creds}
    jenkinsfile = (REPO / "Jenkinsfile").read_text()
    used = set(re.findall(r"credentialsId: '([^']+)'", jenkinsfile))
    assert used, "the Jenkinsfile binds no credential?"
    assert used <= ids
    assert {"github-token", "kubeconfig", "registry", "release-forward-hmac", "release-gwt-token"} <= ids


def test_local_realm_without_signup_and_no_anonymous_permission(casc: dict[str, Any]) -> None:
    jenkins = casc["jenkins"]
    assert jenkins["securityRealm"]["local"]["allowsSignup"] is False
    entries = jenkins["authorizationStrategy"]["globalMatrix"]["entries"]
    names = [next(iter(e.values()))["name"] for e in entries]
    assert "anonymous" not in [n.lower() for n in names]
    assert not any("anonymous" in str(e).lower() for e in entries)
    admin = [e for e in entries if "user" in e and e["user"]["name"] == "admin"]
    assert admin and "Overall/Administer" in admin[0]["user"]["permissions"]
    for entry in entries:
        if "group" in entry:
            assert "Overall/Administer" not in entry["group"]["permissions"]


def test_csrf_protection_and_script_security_are_on(casc: dict[str, Any]) -> None:
    assert "standard" in casc["jenkins"]["crumbIssuer"]
    assert casc["security"]["globalJobDslSecurityConfiguration"]["useScriptSecurity"] is True


def test_webhook_hmac_sha256_verification_is_configured(casc: dict[str, Any]) -> None:
    whitelist = casc["unclassified"]["whitelist"]
    assert whitelist["enabled"] is True
    for item in whitelist["whitelistItems"]:
        assert item["hmacEnabled"] is True
        assert item["hmacAlgorithm"] == "HmacSHA256"
        assert item["hmacHeader"] == "X-Hub-Signature-256"
        assert item["host"] == "127.0.0.1"


def test_the_release_job_is_defined_as_code(casc: dict[str, Any]) -> None:
    (job,) = casc["jobs"]
    script = job["script"]
    assert "pipelineJob('release')" in script
    assert "genericTrigger" in script and "tokenCredentialId('release-gwt-token')" in script
    assert "scriptPath('Jenkinsfile')" in script
    assert "printPostContent(false)" in script  # the payload is not logged
    # Only the escaped form reaches Jenkins: JCasC must not resolve the build parameter itself.
    assert "^${COMMIT}" in script


def test_lockable_gpu_resource_matches_the_jenkinsfile(casc: dict[str, Any]) -> None:
    resources = {r["name"] for r in casc["unclassified"]["lockableResourcesManager"]["declaredResources"]}
    assert "lock(resource: 'gpu'" in (REPO / "Jenkinsfile").read_text()
    assert "gpu" in resources


def test_plugins_are_pinned_unique_and_complete() -> None:
    names: list[str] = []
    for number, raw in enumerate(PLUGINS.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-z0-9][a-z0-9_.-]*):([0-9][A-Za-z0-9._-]*)", line)
        assert match, f"plugins.txt:{number}: {line!r} is not name:version with a pinned version"
        assert match.group(2) not in {"latest", "experimental"}
        names.append(match.group(1))
    assert len(names) == len(set(names)), "duplicate plugin"
    assert set(names) >= REQUIRED_PLUGINS, REQUIRED_PLUGINS - set(names)
