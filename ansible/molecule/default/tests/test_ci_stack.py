"""The CI stack ci_stack converged, checked from the outside with testinfra, and walked end to end.

Everything ran for real inside the privileged systemd container: Debian's docker.io daemon, docker compose, the
role. The images are stand-ins (standins.sh): the receiver runs the real `release-receiver serve` code, the
agent the real jenkins/agent-entrypoint.sh, frpc and Jenkins are emulated on the real frp/frpc.toml and
jenkins/casc/*.yaml the role mounted. The journey below: a signed GitHub delivery enters the tunnel where frps
would hand it to frpc (the frpc stand-in's 127.0.0.1:7000, in frpc's own network namespace), reaches the receiver
at its fixed address, is verified, forwarded to Jenkins across the stack's network and accepted by the whitelist
(source address), the HMAC (the key as Jenkins reads its file) and the job token; the same body under a new
delivery id is refused. Then the release scenario of issue 17: an attacker's deliveries refused, the receiver
restarted alone (the tunnel still delivers), Jenkins down for two simulated hours (the release arrives once).
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
RECEIVER_ADDRESS = "172.30.240.10"
STORE = "/work/out/webhook-replay.sqlite"


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
    assert proxy["localPort"] == 8089
    assert proxy["customDomains"] == ["hooks.molecule.test"]
    tls = rendered["transport"]["tls"]
    assert tls["enable"] is True and tls["trustedCaFile"] == "/etc/frp/tls/ca.crt"
    assert tls["serverName"] == "frps.molecule.test"
    assert rendered["auth"]["tokenSource"]["file"]["path"] == "/run/secrets/frp-token"
    assert "<no value>" not in host.check_output("docker exec %s cat /tmp/frpc-rendered.toml", container(host, "frpc"))
    # The very file of the repository, copied as is.
    assert host.file(f"{PROJECT}/frp/frpc.toml").contains('template "FRP_SERVER_ADDR is not set"')
    # frpc has its own network namespace on the stack's network: the receiver is at its fixed address.
    assert not inspect(host, "frpc", ".HostConfig.NetworkMode").startswith("container:")
    assert proxy["localIP"] == RECEIVER_ADDRESS
    assert proxy["healthCheck"]["type"] == "http" and proxy["healthCheck"]["path"] == "/healthz"


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


def test_the_receiver_and_frpc_report_healthy(host):
    for service in ("receiver", "frpc"):
        deadline = time.time() + 90
        while inspect(host, service, ".State.Health.Status") != "healthy":
            assert time.time() < deadline, f"{service}: {inspect(host, service, '.State.Health')}"
            time.sleep(2)
    command = inspect(host, "receiver", ".Config.Cmd")
    assert command[command.index("--repository") + 1] == "acme/ai-eval-factory"
    assert command[command.index("--release-branch") + 1] == "release"


def post_from_frpc(host, body: bytes, delivery: str) -> tuple[int, dict]:
    """What frps hands over through the tunnel: a POST taken by frpc in its own namespace and sent on to the
    receiver at its fixed address."""
    signature = "sha256=" + hmac.new(WEBHOOK_SECRET, body, hashlib.sha256).hexdigest()
    script = (
        "import json, sys, urllib.request, urllib.error\n"
        "req = urllib.request.Request('http://127.0.0.1:7000/hooks/release', data=sys.argv[1].encode(), "
        "method='POST', headers={'Content-Type': 'application/json', 'X-GitHub-Event': 'pull_request', "
        "'X-GitHub-Delivery': sys.argv[2], 'X-Hub-Signature-256': sys.argv[3]})\n"
        "try:\n"
        "    r = urllib.request.urlopen(req, timeout=20); print(r.status, r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.read().decode())\n"
    )
    out = host.check_output(
        "docker exec %s python3 -c %s %s %s %s", container(host, "frpc"), script, body.decode(), delivery, signature
    )
    status, _, document = out.partition(" ")
    return int(status), json.loads(document or "{}")


def release_body(commit: str, repository: str = "acme/ai-eval-factory", base: str = "release",
                 head: str = "feature/x", number: int = 42) -> bytes:  # fmt: skip
    merged_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = {
        "action": "closed",
        "number": number,
        "pull_request": {
            "number": number, "merged": True, "merged_at": merged_at, "merge_commit_sha": commit,
            "base": {"ref": base}, "head": {"ref": head},
        },
        "repository": {"full_name": repository},
    }  # fmt: skip
    return json.dumps(payload, separators=(",", ":")).encode()


def triggers(host) -> list[dict]:
    text = host.run("docker exec %s cat /var/jenkins_home/triggers.jsonl", container(host, "jenkins")).stdout
    return [json.loads(line) for line in text.splitlines() if line]


def wait_for_triggers(host, commit: str, seconds: float = 60) -> list[dict]:
    """The receiver forwards from its outbox, apart from the request: wait until Jenkins saw the commit."""
    deadline = time.time() + seconds
    while True:
        found = [t for t in triggers(host) if t["params"]["COMMIT"] == commit]
        if found or time.time() > deadline:
            return found
        time.sleep(1)


def new_commit() -> str:
    return f"{time.time_ns():040x}"[-40:]


def test_a_signed_delivery_reaches_the_release_job_once(host):
    commit = new_commit()
    body = release_body(commit, head="renovate/@types-node-20.x")
    status, answer = post_from_frpc(host, body, "molecule-delivery-1")
    assert status == 202, answer
    (trigger,) = wait_for_triggers(host, commit)
    # Jenkins saw the receiver's fixed address, the one its whitelist admits, not the bridge's gateway.
    receiver_ip = inspect(host, "receiver", ".NetworkSettings.Networks")
    (address,) = [n["IPAddress"] for n in receiver_ip.values()]
    assert trigger["remote"] == address == "172.30.240.10"
    assert trigger["params"] == {
        "COMMIT": commit, "PR_NUMBER": "42", "REPOSITORY": "acme/ai-eval-factory", "BASE_REF": "release",
        "DELIVERY_ID": "molecule-delivery-1",
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


# Issue 17, the release scenario.


@pytest.mark.parametrize(
    ("changes", "status", "why"),
    [
        ({"repository": "mallory/fork"}, 403, "untrusted"),  # another repository, signed with the stolen secret
        ({"base": "main"}, 200, "not a release branch"),  # a merge into another branch
        ({"base": "release-hotfix"}, 200, "not a release branch"),  # a self-made "release" branch, no glob
    ],
)
def test_an_attackers_delivery_is_refused_and_never_reaches_jenkins(host, changes, status, why):
    commit = new_commit()
    code, answer = post_from_frpc(host, release_body(commit, **changes), f"attacker-{commit[-8:]}")
    assert code == status and why in json.dumps(answer), answer
    time.sleep(3)
    assert [t for t in triggers(host) if t["params"]["COMMIT"] == commit] == []


def wait_healthy(host, service: str, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while inspect(host, service, ".State.Health.Status") != "healthy":
        assert time.time() < deadline, f"{service} not healthy: {inspect(host, service, '.State.Health')}"
        time.sleep(1)


def test_the_receiver_restarted_alone_the_tunnel_still_delivers(host):
    """A new secret or a crash restarts the receiver only: frpc, in its own namespace, reaches it again."""
    frpc_before = inspect(host, "frpc", ".State.StartedAt")
    host.check_output("docker restart %s", container(host, "receiver"))
    wait_healthy(host, "receiver")
    assert inspect(host, "frpc", ".State.StartedAt") == frpc_before  # frpc was not restarted
    commit = new_commit()
    status, answer = post_from_frpc(host, release_body(commit, number=43), f"after-restart-{commit[-8:]}")
    assert status == 202, answer
    assert len(wait_for_triggers(host, commit)) == 1
    wait_healthy(host, "frpc")


SHIFT_TIME = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
seconds = float(sys.argv[2])
with db:
    db.execute("UPDATE outbox SET accepted_at = accepted_at - ?, next_attempt_at = next_attempt_at - ?",
               (seconds, seconds))
    db.execute("UPDATE deliveries SET seen_at = seen_at - ?", (seconds,))
print(db.execute("SELECT state, attempts, last_failure FROM outbox ORDER BY accepted_at DESC LIMIT 1").fetchone())
"""


def test_jenkins_down_for_two_hours_then_up_the_release_arrives_once(host):
    """Simulated time: the release is accepted while Jenkins is stopped, the receiver's store is moved two hours
    into the past (as if it had been retrying since), then Jenkins starts: the release arrives exactly once."""
    jenkins = container(host, "jenkins")
    host.check_output("docker stop %s", jenkins)
    try:
        commit = new_commit()
        body = release_body(commit, number=44)
        status, answer = post_from_frpc(host, body, f"while-down-{commit[-8:]}")
        assert status == 202 and answer["queued"] is True, answer
        receiver = container(host, "receiver")
        deadline = time.time() + 60
        while True:
            health = json.loads(host.check_output(
                "docker exec %s release-receiver health http://%s:8089/healthz", receiver, RECEIVER_ADDRESS
            ))  # fmt: skip
            if health["last_failure"] or time.time() > deadline:
                break
            time.sleep(1)
        assert health["pending"] >= 1 and health["last_failure"].startswith("unreachable"), health
        state = host.check_output("docker exec %s python3 -c %s %s 7200", receiver, SHIFT_TIME, STORE)
        assert "pending" in state, state
        # GitHub redelivering the same delivery two hours later: already accepted, never a second release.
        status, answer = post_from_frpc(host, body, f"while-down-{commit[-8:]}")
        assert (status, answer.get("error")) == (409, "replay"), answer
    finally:
        host.check_output("docker start %s", jenkins)
    assert len(wait_for_triggers(host, commit, seconds=120)) == 1
    time.sleep(8)  # a few more retry intervals (5 s here): nothing is sent again
    assert len([t for t in triggers(host) if t["params"]["COMMIT"] == commit]) == 1
    outbox = host.check_output("docker exec %s release-receiver outbox --store %s", container(host, "receiver"), STORE)
    assert any(line.startswith("delivered") and commit in line for line in outbox.splitlines()), outbox
