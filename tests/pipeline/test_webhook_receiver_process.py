"""`release-receiver serve` as a real process on 127.0.0.1, as the compose stack runs it, forwarding to a
stand-in for Jenkins' Generic Webhook Trigger endpoint (Jenkins itself cannot run here; the stand-in checks the
forwarded HMAC and token the way the whitelist entry and the job token do).

- a valid GitHub delivery is forwarded exactly once; the same signed body under a new X-GitHub-Delivery
  (GitHub does not sign that header) is answered 409;
- a client that declares a body and sends only part of it is cut off within the read timeout, while other
  deliveries are still served; the worker pool is bounded (excess connections get 503, never a new thread);
- secret files are read the way the sender and Jenkins read them: a trailing newline is trimmed, anything that
  is not hex or base64 text (including bytes that are not UTF-8) stops the receiver with a clear message.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from release_receiver import sign
from tests.pipeline.conftest import MERGE_SHA, REPO, body_of, release_payload
from tests.pipeline.test_webhook_receiver import FakeJenkins, _serve, wait_for

WEBHOOK_SECRET = "3f0c9a2b7d41e8f6a5c3b2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1"
FORWARD_SECRET = "jenkins-whitelist-secret"
READ_TIMEOUT = 2.0


@dataclass
class Receiver:
    url: str
    port: int
    process: subprocess.Popen[str]
    jenkins: FakeJenkins


def start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "release_receiver", "serve", *args, "--repository", "acme/ai-eval-factory"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    return process, line


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    jenkins = FakeJenkins()
    thread = _serve(jenkins.server)
    # Written the way an admin writes them with `echo`/`openssl rand -hex 32 >`: with a trailing newline.
    (tmp_path / "webhook").write_text(WEBHOOK_SECRET + "\n")
    (tmp_path / "forward").write_text(FORWARD_SECRET + "\n")
    (tmp_path / "token").write_text("gwt-token\r\n")
    process, line = start(
        [
            "--secret-file", str(tmp_path / "webhook"), "--store", str(tmp_path / "replay.sqlite"), "--port", "0",
            "--no-require-timestamp", "--forward-url", jenkins.url, "--forward-secret-file", str(tmp_path / "forward"),
            "--forward-token-file", str(tmp_path / "token"), "--read-timeout", str(READ_TIMEOUT), "--workers", "2",
            "--queue", "1",
        ]
    )  # fmt: skip
    try:
        match = re.search(r"listening on (http://127\.0\.0\.1:(\d+)/hooks/release)", line)
        assert match, line + (process.stderr.read() if process.poll() is not None and process.stderr else "")
        yield Receiver(match.group(1), int(match.group(2)), process, jenkins)
    finally:
        process.terminate()
        process.wait(timeout=10)
        jenkins.server.shutdown()
        jenkins.server.server_close()
        thread.join(timeout=5)


def github_post(url: str, body: bytes, delivery: str, secret: str = WEBHOOK_SECRET) -> tuple[int, dict[str, Any]]:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(secret.encode(), body),
    }
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_a_delivery_is_forwarded_once_and_the_same_body_under_a_new_delivery_id_is_a_replay(
    receiver: Receiver,
) -> None:
    body = body_of(release_payload(merged_at=time.time()))
    status, answer = github_post(receiver.url, body, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert status == 202, answer
    wait_for(lambda: receiver.jenkins.received)  # forwarded by the outbox, apart from the request
    assert [r["commit"] for r in receiver.jenkins.received] == [MERGE_SHA]
    # GitHub's "redeliver" (same id), and a captured body re-sent under a made-up id: both replays.
    assert github_post(receiver.url, body, "72d3162e-cc78-11e3-81ab-4c9367dc0958")[0] == 409
    status, answer = github_post(receiver.url, body, "11111111-2222-3333-4444-555555555555")
    assert (status, answer.get("error")) == (409, "replay"), answer
    assert len(receiver.jenkins.received) == 1


def test_an_old_merge_is_refused_by_its_signed_merge_time(receiver: Receiver) -> None:
    body = body_of(release_payload(merged_at=time.time() - 4 * 86400))  # beyond GitHub's 3-day redelivery window
    status, answer = github_post(receiver.url, body, "old-merge-1")
    assert (status, answer.get("error")) == (400, "stale"), answer
    assert receiver.jenkins.received == []


def slow_client(port: int) -> socket.socket:
    """Declares 1000 bytes of body, sends 10, then goes quiet (holds a worker if nothing cuts it off)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /hooks/release HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\nX-GitHub-Event: pull_request\r\n\r\n" + b'{"action":'
    )
    return sock


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    """How long until the server answers and/or closes the connection (recv returns EOF); `limit` if never."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < limit:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return limit


def test_a_slow_body_is_cut_off_within_the_read_timeout_and_others_are_still_served(receiver: Receiver) -> None:
    slow = slow_client(receiver.port)
    try:
        time.sleep(0.3)
        # While the slow client holds a worker, a real delivery is served at once.
        started = time.monotonic()
        status, answer = github_post(receiver.url, body_of(release_payload(merged_at=time.time())), "during-slow")
        assert status == 202, answer
        assert time.monotonic() - started < READ_TIMEOUT
        waited = seconds_until_closed(slow, limit=READ_TIMEOUT + 8)
        assert waited <= READ_TIMEOUT + 2, f"the slow client was still connected after {waited:.1f} s"
    finally:
        slow.close()
    wait_for(lambda: receiver.jenkins.received)
    assert [r["commit"] for r in receiver.jenkins.received] == [MERGE_SHA]


def test_the_worker_pool_is_bounded_and_recovers(receiver: Receiver) -> None:
    """2 workers + 1 queued: the fourth simultaneous slow client is refused at once with 503, not given a thread."""
    held = [slow_client(receiver.port) for _ in range(3)]
    try:
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", receiver.port), timeout=5)
        extra.sendall(b"POST /hooks/release HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        extra.settimeout(5)
        answer = extra.recv(4096)
        extra.close()
        assert answer.startswith(b"HTTP/1.") and b" 503 " in answer.split(b"\r\n", 1)[0], answer[:200]
        for sock in held:
            assert seconds_until_closed(sock, limit=2 * READ_TIMEOUT + 8) <= 2 * READ_TIMEOUT + 3
    finally:
        for sock in held:
            sock.close()
    status, answer = github_post(receiver.url, body_of(release_payload(merged_at=time.time())), "after-the-storm")
    assert status == 202, answer
    assert receiver.process.poll() is None


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe" + WEBHOOK_SECRET.encode(), "not UTF-8"),
        (b"It's a Secret to Everybody\n", "hex or base64"),
        (b" " + WEBHOOK_SECRET.encode(), "hex or base64"),
        (b"-" + WEBHOOK_SECRET.encode(), "must not start with '-'"),
        (b"\n\n", "empty"),
    ],
)
def test_a_secret_file_that_is_not_hex_or_base64_text_stops_the_receiver(
    tmp_path: Path, content: bytes, needle: str
) -> None:
    (tmp_path / "webhook").write_bytes(content)
    process, _ = start(
        ["--secret-file", str(tmp_path / "webhook"), "--store", str(tmp_path / "s.sqlite"), "--port", "0"]
    )
    try:
        assert process.wait(timeout=30) == 2
        assert process.stderr is not None
        message = _ + process.stderr.read()
        assert needle in message and str(tmp_path / "webhook") in message, message
        assert "Traceback" not in message
    finally:
        if process.poll() is None:
            process.kill()
