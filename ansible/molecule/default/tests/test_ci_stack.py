"""The CI stack ci_stack converged, checked from the outside with testinfra, and walked end to end.

Everything ran for real inside the privileged systemd container: Debian's docker.io daemon, docker compose, the
role. The images are stand-ins (standins.sh): the receiver runs the real `release-receiver serve` code, the
agent the real jenkins/agent-entrypoint.sh, frpc and Jenkins are emulated on the real frp/frpc.toml and
jenkins/casc/*.yaml the role mounted. The journey below: a signed GitHub delivery enters where frpc would hand
it over (127.0.0.1:8089 in the receiver's network namespace), is verified, forwarded to Jenkins across the
stack's network and accepted by the whitelist (source address), the HMAC (the key as Jenkins reads its file) and
the job token; the same body under a new delivery id is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import tomllib
from datetime import UTC, datetime

import pytest

PROJECT = "/opt/ai-eval-factory/ci-stack"
# molecule.yml's values: they must never appear in the compose file or a container's configuration.
SECRETS = {
    "molecule-admin-password-1234",
    "molecule-frp-token-5678",
    "molecule-jenkins-admin-9012",
    "molecule-github-token-3456",
    "6d6f6c6563756c652d776562686f6f6b2d7365637265742d3738393031323334",
}
WEBHOOK_SECRET = b"6d6f6c6563756c652d776562686f6f6b2d7365637265742d3738393031323334"
SERVICES = ("jenkins", "agent", "receiver", "frpc", "portainer")


def container(host, service: str) -> str:
    cid = host.check_output("docker ps -q --filter label=com.docker.compose.service=%s", service)
    assert cid, f"{service} is not running"
    return cid


def inspect(host, service: str, template: str):
    return json.loads(host.check_output("docker inspect -f '{{json %s}}' %s", template, container(host, service)))


@pytest.mark.parametrize("service", SERVICES)
def test_compose_services_running(host, service):
    # Stand-ins exit (and restart) when what they check is wrong: running and not restarting means it held.
    assert inspect(host, service, ".State.Status") == "running"
    time.sleep(0.5)
    assert inspect(host, service, ".RestartCount") == 0


def test_jenkins_started_with_every_secret_resolved_strictly(host):
    logs = host.check_output("docker logs %s 2>&1", container(host, "jenkins"))
    assert "casc resolved, executors on the controller: 0" in logs
    assert "Unable to resolve" not in logs
    env = inspect(host, "jenkins", ".Config.Env")
    assert "CASC_STRICT_SECRET_RESOLUTION=true" in env


def test_the_frpc_config_routes_only_the_webhook_path_to_the_receiver_with_tls_verified(host):
    rendered = tomllib.loads(host.check_output("docker exec %s cat /tmp/frpc-rendered.toml", container(host, "frpc")))
    (proxy,) = rendered["proxies"]
    assert proxy["type"] == "http" and proxy["locations"] == ["/hooks/release"]
    assert (proxy["localIP"], proxy["localPort"]) == ("127.0.0.1", 8089)
    assert proxy["customDomains"] == ["hooks.molecule.test"]
    tls = rendered["transport"]["tls"]
    assert tls["enable"] is True and tls["trustedCaFile"] == "/etc/frp/tls/ca.crt"
    assert tls["serverName"] == "frps.molecule.test"
    assert rendered["auth"]["tokenSource"]["file"]["path"] == "/run/secrets/frp-token"
    assert "<no value>" not in host.check_output("docker exec %s cat /tmp/frpc-rendered.toml", container(host, "frpc"))
    # The very file of the repository, copied as is.
    assert host.file(f"{PROJECT}/frp/frpc.toml").contains('template "FRP_SERVER_ADDR is not set"')
    # frpc shares the receiver's network namespace: its 127.0.0.1:8089 is the receiver.
    receiver_id = inspect(host, "receiver", ".Id")
    assert inspect(host, "frpc", ".HostConfig.NetworkMode") == f"container:{receiver_id}"


def test_nothing_publishes_jenkins_beyond_loopback(host):
    for service in SERVICES:
        ports = inspect(host, service, ".NetworkSettings.Ports") or {}
        bindings = [b for published in ports.values() if published for b in published]
        if service == "jenkins":
            assert [(b["HostIp"], b["HostPort"]) for b in bindings] == [("127.0.0.1", "8080")]
        elif service == "portainer":
            assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
        else:
            assert bindings == [], f"{service} publishes {bindings}"
    assert host.socket("tcp://127.0.0.1:8080").is_listening
    assert not host.socket("tcp://0.0.0.0:8080").is_listening
    assert not host.socket("tcp://0.0.0.0:8089").is_listening and not host.socket("tcp://127.0.0.1:8089").is_listening


def post_from_frpc(host, body: bytes, delivery: str) -> tuple[int, dict]:
    """What frpc hands over: a POST to 127.0.0.1:8089 inside the receiver's network namespace."""
    signature = "sha256=" + hmac.new(WEBHOOK_SECRET, body, hashlib.sha256).hexdigest()
    script = (
        "import json, sys, urllib.request, urllib.error\n"
        "req = urllib.request.Request('http://127.0.0.1:8089/hooks/release', data=sys.argv[1].encode(), "
        "method='POST', headers={'Content-Type': 'application/json', 'X-GitHub-Event': 'pull_request', "
        "'X-GitHub-Delivery': sys.argv[2], 'X-Hub-Signature-256': sys.argv[3]})\n"
        "try:\n"
        "    r = urllib.request.urlopen(req, timeout=20); print(r.status, r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.read().decode())\n"
    )
    out = host.check_output(
        "docker exec %s python3 -c %s %s %s %s", container(host, "receiver"), script, body.decode(), delivery, signature
    )
    status, _, document = out.partition(" ")
    return int(status), json.loads(document or "{}")


def release_body(commit: str) -> bytes:
    merged_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = {
        "action": "closed",
        "number": 42,
        "pull_request": {
            "number": 42, "merged": True, "merged_at": merged_at, "merge_commit_sha": commit,
            "base": {"ref": "release"}, "head": {"ref": "feature/x"},
        },
        "repository": {"full_name": "acme/ai-eval-factory"},
    }  # fmt: skip
    return json.dumps(payload, separators=(",", ":")).encode()


def triggers(host) -> list[dict]:
    text = host.run("docker exec %s cat /var/jenkins_home/triggers.jsonl", container(host, "jenkins")).stdout
    return [json.loads(line) for line in text.splitlines() if line]


def test_a_signed_delivery_reaches_the_release_job_once(host):
    commit = f"{int(time.time() * 1000):040x}"
    body = release_body(commit)
    status, answer = post_from_frpc(host, body, "molecule-delivery-1")
    assert status == 202, answer
    (trigger,) = [t for t in triggers(host) if t["params"]["COMMIT"] == commit]
    # Jenkins saw the receiver's fixed address, the one its whitelist admits, not the bridge's gateway.
    receiver_ip = inspect(host, "receiver", ".NetworkSettings.Networks")
    (address,) = [n["IPAddress"] for n in receiver_ip.values()]
    assert trigger["remote"] == address == "172.30.240.10"
    assert trigger["params"] == {
        "COMMIT": commit, "PR_NUMBER": "42", "REPOSITORY": "acme/ai-eval-factory", "DELIVERY_ID": "molecule-delivery-1",
    }  # fmt: skip
    # The same signed body under a new delivery id (headers are not signed): a replay, never a second build.
    status, answer = post_from_frpc(host, body, "molecule-delivery-2")
    assert (status, answer.get("error")) == (409, "replay"), answer
    assert len([t for t in triggers(host) if t["params"]["COMMIT"] == commit]) == 1


def test_jenkins_refuses_what_does_not_come_from_the_receiver(host):
    """From the host through the published port, Jenkins sees the bridge gateway: not whitelisted."""
    script = (
        "import urllib.request, urllib.error\n"
        "req = urllib.request.Request('http://127.0.0.1:8080/generic-webhook-trigger/invoke', method='POST', "
        "data=b'{}', headers={'Authorization': 'Bearer guess'})\n"
        "try:\n"
        "    print(urllib.request.urlopen(req, timeout=20).status)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    assert host.check_output("python3 -c %s", script) == "403"


def test_builds_run_on_the_agent_through_the_socket_and_the_controller_has_none(host):
    mounts = inspect(host, "jenkins", ".Mounts")
    assert not any(m["Destination"] == "/var/run/docker.sock" for m in mounts)
    # The controller reaches its agent over SSH with its key, the agent's host key pinned, and the build user
    # runs a container through the host's socket (its group looked up when the agent started).
    check = host.run("docker exec %s python3 /usr/local/bin/jenkins-standin agent-check", container(host, "jenkins"))
    assert check.rc == 0, check.stdout + check.stderr
    socket_gid = host.file("/var/run/docker.sock").gid
    groups = host.check_output("docker exec %s id -G jenkins", container(host, "agent")).split()
    assert str(socket_gid) in groups
    run = host.run(
        "docker exec -u jenkins %s docker run --rm molecule-standin/base:test echo via-socket", container(host, "agent")
    )
    assert run.rc == 0 and run.stdout.strip() == "via-socket", run.stderr


def test_secrets_are_private_files_not_in_the_compose_file(host):
    assert host.file(f"{PROJECT}/secrets").mode == 0o700
    for name in ("portainer_admin_password", "agent-host-key"):
        secret = host.file(f"{PROJECT}/secrets/{name}")
        assert secret.mode == 0o600 and secret.user == "root" and secret.group == "root"
    for name in ("frp-token", "jenkins-admin-password", "github-token", "release-webhook-secret",
                 "release-forward-hmac", "release-gwt-token", "agent-ssh-key"):  # fmt: skip
        secret = host.file(f"{PROJECT}/secrets/{name}")
        assert secret.mode == 0o440 and secret.user == "root" and secret.gid == 10500, name
    compose = host.file(f"{PROJECT}/compose.yml").content_string
    assert not any(value in compose for value in SECRETS)
    assert "DOCKER_SOCKET_GID" in compose  # the gid is not baked in


def test_secrets_never_reach_a_containers_configuration(host):
    for service in SERVICES:
        config = host.check_output("docker inspect -f '{{json .Config}}' %s", container(host, service))
        assert not any(value in config for value in SECRETS), service
