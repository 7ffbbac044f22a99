"""jenkins/casc/*.yaml and jenkins/plugins.txt: secrets only by reference and resolved strictly (a missing file
stops Jenkins), no executors on the controller, no anonymous access and no Replay for non-admins, pinned plugins."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.pipeline.conftest import REPO
from tests.pipeline.jenkins_standin import JENKINS

CASC_FILES = [REPO / "jenkins" / "casc" / "jenkins.yaml", REPO / "jenkins" / "casc" / "cluster.yaml"]
PLUGINS = REPO / "jenkins" / "plugins.txt"
SECRET_FIELDS = {"secret", "password", "secretBytes", "privateKey", "token", "passphrase", "apiToken"}
SECRET_REF = re.compile(
    r"^\$\{trim:\$\{readFile:/run/secrets/[A-Za-z0-9._-]+\}\}$"
    r"|^\$\{readFileBase64:/run/secrets/[A-Za-z0-9._-]+\}$|^\$\{[A-Z][A-Z0-9_]*\}$"
    r"|^\$\{readFile:/run/secrets/agent-ssh-key\}$"  # PEM: untrimmed (`trim:-----BEGIN` reads as a default)
)
REQUIRED_PLUGINS = {
    "configuration-as-code", "job-dsl", "workflow-aggregator", "git", "generic-webhook-trigger",
    "junit", "htmlpublisher", "matrix-auth", "credentials-binding", "lockable-resources",
    "pipeline-milestone-step", "timestamper",
}  # fmt: skip


@pytest.fixture(scope="module")
def casc() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in CASC_FILES:
        data = yaml.safe_load(path.read_text())
        assert isinstance(data, dict), path
        merged = JENKINS.merge(merged, data)  # the stand-in's JCasC merge, one model of it
    return merged


def credentials(casc: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """id -> (type, fields) of every credential, across the domainCredentials entries JCasC combines."""
    found = {}
    for domain in casc["credentials"]["system"]["domainCredentials"]:
        for credential in domain["credentials"]:
            ((kind, fields),) = credential.items()
            found[fields["id"]] = (kind, fields)
    return found


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
    ids = set(credentials(casc))
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
        # The receiver's address on the stack's network, set by the stack (test_ci_stack.py checks the pair):
        # 127.0.0.1 is never the peer address Jenkins sees from inside its container.
        assert item["host"] == "${RELEASE_RECEIVER_ADDRESS}"


def test_the_release_job_is_defined_as_code(casc: dict[str, Any]) -> None:
    (job,) = casc["jobs"]
    script = job["script"]
    assert "pipelineJob('release')" in script
    assert "genericTrigger" in script and "tokenCredentialId('release-gwt-token')" in script
    assert "scriptPath('Jenkinsfile')" in script
    assert "printPostContent(false)" in script  # the payload is not logged
    # The Jenkinsfile comes from the release branch the stack names (RELEASE_BRANCH, resolved by JCasC), never
    # from the commit under test (test_jenkinsfile.py: the commit is verified before any file of it runs).
    assert "branch('refs/heads/${RELEASE_BRANCH}')" in script and "${COMMIT}" not in script


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


# 3. Strict secret resolution: a missing secret file stops Jenkins instead of becoming an empty password.

STRICT_SINCE = "2065.v7a_20a_b_d84088"  # configuration-as-code: "Add strict mode ... (#2814)", fc1796c5
TRIM_SINCE = "2061.vc08919f7fc37"  # configuration-as-code: "Add trim helper ... (#2810)", c08919f7


def plugin_versions() -> dict[str, str]:
    pins = {}
    for raw in PLUGINS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, version = line.split(":", 1)
            pins[name] = version
    return pins


def incremental(version: str) -> int:
    return int(version.split(".", 1)[0])


def test_secrets_resolve_strictly_and_trimmed() -> None:
    dockerfile = (REPO / "jenkins" / "Dockerfile").read_text()
    assert re.search(r"CASC_STRICT_SECRET_RESOLUTION=true", dockerfile), "strict resolution is off by default"
    version = plugin_versions()["configuration-as-code"]
    assert incremental(version) >= incremental(STRICT_SINCE), f"configuration-as-code {version} has no strict mode"
    assert incremental(version) >= incremental(TRIM_SINCE), f"configuration-as-code {version} has no trim helper"
    for path in CASC_FILES:
        text = path.read_text()
        # ${trim:...} strips the trailing newline `echo` leaves (the receiver and the sender trim the same way).
        untrimmed = re.findall(r"(?<!trim:)\$\{readFile:([^}]*)\}", text)
        assert untrimmed in ([], ["/run/secrets/agent-ssh-key"]), f"{path.name}: a readFile without trim: {untrimmed}"
        # No default (`:-`) on a secret: a default is what strict mode lets through.
        assert not re.search(r"\$\{(trim:)?\$?\{?readFile[^}]*:-", text)


# 4. No builds on the controller; nobody but the administrator may Replay (edit and re-run) a pipeline.


def test_no_executors_on_the_controller_and_one_docker_agent(casc: dict[str, Any]) -> None:
    jenkins = casc["jenkins"]
    assert jenkins["numExecutors"] == 0
    (node,) = jenkins["nodes"]
    agent = node["permanent"]
    labels = set(agent["labelString"].split())
    assert {"docker", "gpu"} <= labels
    assert agent["numExecutors"] >= 1 and agent["mode"] == "EXCLUSIVE"
    assert "agent { label 'docker' }" in (REPO / "Jenkinsfile").read_text()
    ssh = agent["launcher"]["ssh"]
    kind, _ = credentials(casc)[ssh["credentialsId"]]
    assert kind == "basicSSHUserPrivateKey"
    # The agent's host key is pinned, never trusted on first use.
    assert set(ssh["sshHostKeyVerificationStrategy"]) == {"manuallyProvidedKeyVerificationStrategy"}


def test_only_the_administrator_may_replay_configure_or_run_scripts(casc: dict[str, Any]) -> None:
    allowed_for_others = {"Overall/Read", "Job/Read"}
    for entry in casc["jenkins"]["authorizationStrategy"]["globalMatrix"]["entries"]:
        ((kind, fields),) = entry.items()
        if kind == "user" and fields["name"] == "admin":
            continue
        extra = set(fields["permissions"]) - allowed_for_others
        assert not extra, f"{kind} {fields['name']} may {sorted(extra)}"


# 9. Git needs a username/password credential; the API calls a secret-text one.


def test_the_checkout_credential_is_a_username_password(casc: dict[str, Any]) -> None:
    (job,) = casc["jobs"]
    match = re.search(r"remote \{.*?credentials\('([^']+)'\)", job["script"], re.DOTALL)
    assert match, "the release job's git remote names no credential"
    kind, fields = credentials(casc)[match.group(1)]
    assert kind == "usernamePassword"
    assert fields["password"] == "${trim:${readFile:/run/secrets/github-token}}"
    kind, _ = credentials(casc)["github-token"]
    assert kind == "string"


def test_the_release_job_reads_what_the_receiver_forwards(casc: dict[str, Any]) -> None:
    """The receiver forwards ReleaseParams as JSON; the trigger's JSONPaths must name its keys, and each
    variable must be a parameter of the job (else Jenkins drops it)."""
    import dataclasses

    from release_receiver import ReleaseParams

    script = casc["jobs"][0]["script"]
    variables = dict(re.findall(r"genericVariable \{ key\('([^']+)'\); value\('\$\.([a-z_]+)'\) \}", script))
    assert variables, "the release job extracts no variable"
    forwarded = {f.name for f in dataclasses.fields(ReleaseParams)}
    assert set(variables.values()) <= forwarded
    parameters = set(re.findall(r"(?:string|choice)Param\('([A-Z_]+)'", script))
    assert set(variables) <= parameters
    # Everything the scripts read from the job reaches them as a parameter.
    assert {
        "COMMIT",
        "PR_NUMBER",
        "REPOSITORY",
        "BASE_REF",
        "EVAL_SUITE",
        "EVAL_PATH",
        "GATE_MODE",
        "EVAL_TARGET_MODEL",
        "REGISTRY",
    } <= parameters
