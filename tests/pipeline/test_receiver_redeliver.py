"""`release-receiver redeliver`: GitHub never retries a failed delivery; this asks its API for the hook's failed
deliveries and redelivers each once (issue 17, item 7). Tested against a local stand-in of that API
(tests/pipeline/github_api_standin.py, which cites GitHub's REST docs) that really resends to the receiver."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release_receiver import ReleasePolicy, ReplayStore, VerifierConfig, sign
from release_receiver.outbox import Backoff, Forwarder
from release_receiver.server import ReceiverConfig, make_server
from tests.pipeline.conftest import REPO, SECRET, body_of, release_payload
from tests.pipeline.github_api_standin import WINDOW_S, GitHubHooksStandin
from tests.pipeline.gwt_standin import FORWARD_SECRET, TOKEN, GwtStandin
from tests.pipeline.test_webhook_receiver import wait_for

API_TOKEN = "github_pat_standin_0123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    jenkins = GwtStandin()
    github = GitHubHooksStandin("acme/ai-eval-factory", 7, API_TOKEN, f"http://127.0.0.1:{port}/hooks/release",
                                time.time)  # fmt: skip
    (tmp_path / "token").write_text(API_TOKEN + "\n")
    found: dict[str, Any] = {"port": port, "jenkins": jenkins, "github": github, "tmp": tmp_path, "servers": []}
    yield found
    for server in found["servers"]:
        server.shutdown()
        server.server_close()
    github.close()
    jenkins.close()


def start_receiver(world: dict[str, Any]) -> None:
    verifier = VerifierConfig(secret=SECRET, policy=ReleasePolicy(("acme/ai-eval-factory",)), require_timestamp=False)
    config = ReceiverConfig(
        "/hooks/release", verifier, ReplayStore(world["tmp"] / "store.sqlite", verifier.replay_window_s),
        Forwarder(world["jenkins"].url, FORWARD_SECRET, TOKEN, timeout_s=5), backoff=Backoff(0.1, 0.2), poll_s=0.05,
    )  # fmt: skip
    server = make_server("127.0.0.1", world["port"], config)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    world["servers"].append(server)


def github_sends(github: GitHubHooksStandin, guid: str, number: int) -> int:
    pr = release_payload(merged_at=time.time())["pull_request"] | {
        "number": number,
        "merge_commit_sha": f"{number:040x}",
    }
    body = body_of(release_payload(number=number, pull_request=pr))
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": guid,
               "X-Hub-Signature-256": sign(SECRET, body)}  # fmt: skip
    return github.deliver(guid, headers, body)


def redeliver(world: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "release_receiver", "redeliver", "--repository", "acme/ai-eval-factory",
         "--hook-id", "7", "--token-file", str(world["tmp"] / "token"), "--api-url", world["github"].api_url, *extra],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip


def test_deliveries_that_failed_while_the_receiver_was_down_are_redelivered_once(world: dict[str, Any]) -> None:
    github, jenkins = world["github"], world["jenkins"]
    assert github_sends(github, "guid-a", 1) == 502  # the tunnel had nowhere to go
    assert github_sends(github, "guid-b", 2) == 502
    start_receiver(world)
    assert github.deliver("guid-b") == 202  # someone clicked "Redeliver" for b in GitHub's UI
    assert github_sends(github, "guid-c", 3) == 202
    dry = redeliver(world, "--dry-run")
    assert dry.returncode == 0 and "guid-a" in dry.stdout and "would redeliver" in dry.stdout, dry.stderr
    assert "guid-b" not in dry.stdout and "guid-c" not in dry.stdout  # b succeeded on a later attempt
    assert github.redeliveries == 0
    done = redeliver(world)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "guid-a" in done.stdout and "redelivered" in done.stdout and "1 of 1" in done.stderr
    wait_for(lambda: len(jenkins.queued) == 3)
    assert sorted(p["pr_number"] for p in jenkins.queued) == [1, 2, 3]
    again = redeliver(world)  # every guid has a 2xx attempt now: nothing to do
    assert again.returncode == 0 and "0 of 0" in again.stderr
    assert github.redeliveries == 1


def test_a_redelivery_of_something_already_accepted_counts_as_delivered(world: dict[str, Any]) -> None:
    """GitHub records a delivery as failed when the answer came late; redelivered, the receiver says 409 (it holds
    it): that guid is done, not redelivered again and again."""
    start_receiver(world)
    github = world["github"]
    assert github_sends(github, "guid-slow", 5) == 202
    github.attempts[-1].update(status="timed out", status_code=0)  # GitHub gave up waiting
    assert redeliver(world).returncode == 0 and github.attempts[-1]["status_code"] == 409
    assert "0 of 0" in redeliver(world).stderr


def test_deliveries_older_than_githubs_window_are_left_alone(world: dict[str, Any]) -> None:
    github = world["github"]
    github_sends(github, "guid-old", 9)
    github.attempts[-1]["_at"] = time.time() - WINDOW_S - 60
    done = redeliver(world)
    assert done.returncode == 0 and "guid-old" not in done.stdout and github.redeliveries == 0


def test_bad_credentials_and_an_unknown_hook_are_one_clear_line(world: dict[str, Any]) -> None:
    (world["tmp"] / "token").write_text("wrong\n")
    done = redeliver(world)
    assert done.returncode == 2 and "HTTP 401" in done.stderr and "Traceback" not in done.stderr
    (world["tmp"] / "token").write_text(API_TOKEN)
    other = subprocess.run(
        [sys.executable, "-m", "release_receiver", "redeliver", "--repository", "acme/ai-eval-factory", "--hook-id",
         "8", "--token-file", str(world["tmp"] / "token"), "--api-url", world["github"].api_url],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert other.returncode == 2 and "HTTP 404" in other.stderr


# The stand-in refuses what GitHub refuses.


def api(world: dict[str, Any], path: str, method: str = "GET", token: str = API_TOKEN) -> tuple[int, Any, str]:
    request = urllib.request.Request(world["github"].api_url + path, method=method, data=b"" if method == "POST"
                                     else None, headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers.get("Link", "")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), ""


def test_the_api_standin_refuses_what_github_refuses_and_pages_newest_first(world: dict[str, Any]) -> None:
    github = world["github"]
    for i in range(5):
        github_sends(github, f"guid-{i}", i + 1)
    base = "/repos/acme/ai-eval-factory/hooks/7/deliveries"
    assert api(world, base, token="nope")[0] == 401
    assert api(world, "/repos/acme/other/hooks/7/deliveries")[0] == 404
    status, page, link = api(world, base + "?per_page=2")
    assert status == 200 and [d["guid"] for d in page] == ["guid-4", "guid-3"] and 'rel="next"' in link
    assert len(api(world, base + "?per_page=500")[1]) == 5  # capped at 100, not refused
    github.attempts[0]["_at"] = time.time() - WINDOW_S - 1
    assert api(world, f"{base}/{github.attempts[0]['id']}/attempts", "POST")[0] == 422
    assert api(world, f"{base}/{github.attempts[1]['id']}/attempts", "POST")[0] == 202


class _BrokenApi:
    """A server that answers every request with the given bytes, then closes: a truncated or garbled GitHub."""

    def __init__(self, answer: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(self.answer)


@pytest.mark.parametrize(
    "answer",
    [
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n[{"id": 1',  # IncompleteRead
        b"SSH-2.0-OpenSSH_9.2\r\n",  # not HTTP: BadStatusLine
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",  # not a list
        b'HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n[{"guid": "x"}]',  # an entry without its fields
    ],
)
def test_a_broken_api_answer_is_one_clear_line_not_a_traceback(tmp_path: Path, answer: bytes) -> None:
    broken = _BrokenApi(answer)
    (tmp_path / "token").write_text(API_TOKEN)
    done = subprocess.run(
        [sys.executable, "-m", "release_receiver", "redeliver", "--repository", "acme/ai-eval-factory",
         "--hook-id", "7", "--token-file", str(tmp_path / "token"), "--api-url", broken.url],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    broken.sock.close()
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("error: GET "), done.stderr
