"""`release-receiver serve` for real on 127.0.0.1, forwarding to a stand-in for Jenkins' Generic Webhook
Trigger endpoint (Jenkins itself cannot run here). The stand-in checks the forwarded HMAC like Jenkins'
whitelist entry does. Forwarding happens apart from the request (the outbox): tests wait for it."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from release_receiver import ReleasePolicy, ReplayStore, VerifierConfig, sign, verify_signature
from release_receiver.outbox import Backoff
from release_receiver.server import Forwarder, ReceiverConfig, make_server
from tests.pipeline.conftest import MERGE_SHA, SECRET, body_of, release_payload

FORWARD_SECRET = b"jenkins-whitelist-secret"
NOW = 1_800_000_000


class FakeJenkins:
    """Records forwarded bodies; answers 503 while `down` is set."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.down = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                verify_signature(FORWARD_SECRET, body, self.headers.get("X-Hub-Signature-256"))
                assert self.headers.get("Authorization") == "Bearer gwt-token"
                outer.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"jobs": {"release": {"triggered": true, "id": 1}}, "message": "Triggered jobs."}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/generic-webhook-trigger/invoke"


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, FakeJenkins]]:
    jenkins = FakeJenkins()
    started = time.monotonic()
    verifier = VerifierConfig(secret=SECRET, policy=ReleasePolicy(("acme/ai-eval-factory",)))
    config = ReceiverConfig(
        path="/hooks/release",
        verifier=verifier,
        store=ReplayStore(tmp_path / "replay.sqlite", verifier.replay_window_s),
        forward=Forwarder(jenkins.url, FORWARD_SECRET, token="gwt-token", timeout_s=5),
        clock=lambda: NOW + (time.monotonic() - started),  # the payloads' time, running (the outbox waits on it)
        backoff=Backoff(first_s=0.1, max_s=0.2),
        poll_s=0.05,
    )
    receiver = make_server("127.0.0.1", 0, config)
    threads = [_serve(jenkins.server), _serve(receiver)]
    yield f"http://127.0.0.1:{receiver.server_address[1]}", jenkins
    for server in (receiver, jenkins.server):
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(timeout=5)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def delivery(delivery_id: str = "run-1-1", **payload_changes: Any) -> tuple[bytes, dict[str, str]]:
    payload = release_payload(**payload_changes) | {"release_trigger": {"delivery": delivery_id, "timestamp": NOW}}
    body = body_of(payload)
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": delivery_id,
        "X-Release-Timestamp": str(NOW),
        "X-Hub-Signature-256": sign(SECRET, body),
    }


def wait_for(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_release_merge_is_verified_and_forwarded_signed(stack: tuple[str, FakeJenkins]) -> None:
    url, jenkins = stack
    status, answer = post(url + "/hooks/release", *delivery())
    assert status == 202, answer
    wait_for(lambda: jenkins.received)
    assert jenkins.received == [answer["accepted"]]
    assert jenkins.received[0]["commit"] == MERGE_SHA
    assert jenkins.received[0]["pr_number"] == 42


def test_replays_forgeries_and_other_paths_never_reach_jenkins(stack: tuple[str, FakeJenkins]) -> None:
    url, jenkins = stack
    body, headers = delivery()
    assert post(url + "/hooks/release", body, headers)[0] == 202
    status, answer = post(url + "/hooks/release", body, headers)
    assert (status, answer["error"]) == (409, "replay")
    assert post(url + "/hooks/release", body, headers | {"X-Hub-Signature-256": "sha256=" + "0" * 64})[0] == 401
    assert (
        post(url + "/hooks/release", body, {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"})[0] == 401
    )
    assert post(url + "/generic-webhook-trigger/invoke", body, headers)[0] == 404
    wait_for(lambda: jenkins.received)
    time.sleep(0.3)
    assert len(jenkins.received) == 1


def test_an_authentic_non_release_event_is_answered_but_not_forwarded(stack: tuple[str, FakeJenkins]) -> None:
    url, jenkins = stack
    status, answer = post(url + "/hooks/release", *delivery(action="opened"))
    assert status == 200
    assert "closed" in answer["ignored"]
    assert jenkins.received == []


def test_when_jenkins_is_down_the_delivery_is_kept_and_forwarded_once_it_is_back(
    stack: tuple[str, FakeJenkins],
) -> None:
    """The sender is answered 202 at once (the release is durable); its retry is a replay, never lost work."""
    url, jenkins = stack
    jenkins.down = True
    body, headers = delivery("run-7-1")
    assert post(url + "/hooks/release", body, headers)[0] == 202
    assert post(url + "/hooks/release", body, headers)[0] == 409
    time.sleep(0.3)
    assert jenkins.received == []
    jenkins.down = False
    wait_for(lambda: jenkins.received)
    time.sleep(0.3)
    assert len(jenkins.received) == 1


def headers_only(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST that sends its headers and no body, so the server must decide from the headers alone.

    Sending a real 1 MiB body races the server's early 413 (it closes without reading, as nginx does) and
    the client sees a broken pipe instead of the answer; the decision under test is header-based anyway."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        connection.putrequest("POST", parsed.path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_oversized_and_lengthless_requests_are_refused(stack: tuple[str, FakeJenkins]) -> None:
    url, jenkins = stack
    oversized = {"Content-Type": "application/json", "Content-Length": str(1024 * 1024 + 1)}
    status, answer = headers_only(url + "/hooks/release", oversized)
    assert (status, answer["error"]) == (413, "size")
    status, answer = headers_only(url + "/hooks/release", {"Content-Type": "application/json"})
    assert (status, answer["error"]) == (411, "length")
    assert jenkins.received == []
