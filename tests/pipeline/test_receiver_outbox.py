"""Every accepted delivery is released exactly once (issue 17, item 7).

The receiver answers 202 once the release is durable in its store (the outbox), then forwards it to Jenkins
with retries and backoff until Jenkins acknowledges it; every forwarding failure is classified, none escapes a
request. Time is simulated where the story takes hours (a fake clock drives the outbox worker); the network
faults are real sockets against a stand-in of the Generic Webhook Trigger (tests/pipeline/gwt_standin.py)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release_receiver import ReplayError, ReplayStore, VerifierConfig, sign, verify_delivery
from release_receiver.outbox import Backoff, Forwarder, ForwardFailure, OutboxWorker
from release_receiver.refs import ReleasePolicy
from release_receiver.server import ReceiverConfig, make_server
from release_receiver.verify import DELIVERY_LAG_S, REDELIVERY_WINDOW_S, Delivery
from tests.pipeline.conftest import MERGE_SHA, SECRET, body_of, release_payload
from tests.pipeline.gwt_standin import FORWARD_SECRET, TOKEN, GwtStandin, closed_port_url
from tests.pipeline.test_webhook_receiver import wait_for

POLICY = ReleasePolicy(("acme/ai-eval-factory",))
CONFIG = VerifierConfig(secret=SECRET, policy=POLICY, require_timestamp=False)
T0 = 1_800_000_000.0


def github(payload: dict[str, Any], guid: str) -> Delivery:
    body = body_of(payload)
    return Delivery(body=body, signature=sign(SECRET, body), delivery_id=guid)


@pytest.fixture
def jenkins() -> Iterator[GwtStandin]:
    standin = GwtStandin(hang_s=2.0)
    yield standin
    standin.close()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_jenkins_down_for_two_hours_then_up_releases_once(tmp_path: Path, jenkins: GwtStandin) -> None:
    """Simulated time: accepted at T0 (Jenkins down), retried with backoff for two hours, released once it is up;
    GitHub's redelivery of the same delivery, and a re-run under a new id, are replays all along."""
    clock = Clock(T0)
    store = ReplayStore(tmp_path / "store.sqlite", CONFIG.replay_window_s)
    down = {"value": True}
    forwarder = Forwarder(jenkins.url, FORWARD_SECRET, TOKEN, timeout_s=5)
    dead = Forwarder(closed_port_url(), FORWARD_SECRET, TOKEN, timeout_s=5)
    worker = OutboxWorker(store, lambda p: (dead if down["value"] else forwarder)(p), clock, Backoff(2, 300), log=print)
    outcome = verify_delivery(
        github(release_payload(merged_at=T0 - 60), "guid-1"), CONFIG, store, clock(), enqueue=True
    )
    assert [e.release_key for e in store.entries(("pending",))] == [outcome.replay_key]  # type: ignore[union-attr]
    attempts = 0
    while clock.now < T0 + 2 * 3600:
        attempts += worker.run_due()
        upcoming = store.next_due()
        assert upcoming is not None, "a pending release was dropped while Jenkins was down"
        clock.now = max(clock.now + 1, upcoming)
        with pytest.raises(ReplayError):  # redelivered by GitHub at any point: already accepted
            verify_delivery(github(release_payload(merged_at=T0 - 60), "guid-1"), CONFIG, store, clock())
    (entry,) = store.entries(("pending",))
    assert entry.last_failure is not None and entry.last_failure.startswith("unreachable")
    assert 20 <= attempts <= 40, attempts  # backoff doubling from 2 s, capped at 5 min
    down["value"] = False
    clock.now = store.next_due() or clock.now
    worker.run_due()
    assert [p["commit"] for p in jenkins.received] == [MERGE_SHA]
    assert store.entries(("pending",)) == [] and len(store.entries(("delivered",))) == 1
    worker.run_due()
    assert len(jenkins.received) == 1
    with pytest.raises(ReplayError):  # our sender re-run with a new delivery id: the same release
        verify_delivery(github(release_payload(merged_at=T0 - 60), "guid-2"), CONFIG, store, clock.now + 10)


@pytest.mark.parametrize(
    ("fault", "url", "token", "commit", "kind"),
    [
        ("refuse", None, TOKEN, MERGE_SHA, "unreachable"),
        ("hang", "", TOKEN, MERGE_SHA, "timeout"),
        ("truncate", "", TOKEN, MERGE_SHA, "truncated"),
        ("garbage", "", TOKEN, MERGE_SHA, "protocol"),
        ("503", "", TOKEN, MERGE_SHA, "server"),
        (None, "", "wrong-token", MERGE_SHA, "rejected"),
        (None, "", TOKEN, "not-a-sha", "refused"),
    ],
)
def test_every_forwarding_failure_is_classified(
    jenkins: GwtStandin, fault: str | None, url: str | None, token: str, commit: str, kind: str
) -> None:
    jenkins.fault = fault if fault != "refuse" else None
    target = closed_port_url() if url is None else jenkins.url
    forward = Forwarder(target, FORWARD_SECRET, token, timeout_s=1.0)
    with pytest.raises(ForwardFailure) as info:
        forward({"commit": commit, "pr_number": 42, "repository": "acme/ai-eval-factory"})
    assert info.value.kind == kind, str(info.value)
    assert info.value.terminal == (kind == "refused")


def test_a_wrong_hmac_key_is_a_rejection_an_admin_must_fix(jenkins: GwtStandin) -> None:
    with pytest.raises(ForwardFailure) as info:
        Forwarder(jenkins.url, b"not-the-key", TOKEN, timeout_s=2)({"commit": MERGE_SHA})
    assert info.value.kind == "rejected" and "403" in str(info.value)


def post(url: str, body: bytes, guid: str, timeout: float = 10) -> tuple[int, dict[str, Any], float]:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": guid,
               "X-Hub-Signature-256": sign(SECRET, body)}  # fmt: skip
    started = time.monotonic()
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), time.monotonic() - started


def serve(tmp_path: Path, jenkins_url: str) -> Any:
    import threading

    config = ReceiverConfig(
        "/hooks/release", CONFIG, ReplayStore(tmp_path / "store.sqlite", CONFIG.replay_window_s),
        Forwarder(jenkins_url, FORWARD_SECRET, TOKEN, timeout_s=1.0), backoff=Backoff(0.2, 0.5), poll_s=0.1,
    )  # fmt: skip
    server = make_server("127.0.0.1", 0, config)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", config.store


@pytest.mark.parametrize("fault", ["truncate", "hang", "garbage", "503"])
def test_a_broken_answer_from_jenkins_neither_fails_the_delivery_nor_doubles_the_release(
    tmp_path: Path, jenkins: GwtStandin, fault: str
) -> None:
    """GitHub gets 202 at once, whatever Jenkins does; the release reaches Jenkins' queue once. An ambiguous
    answer (truncated, timed out) is retried with the very same parameters, which Jenkins' queue merges, and a
    build that started anyway stops at its claim (test_release_commit.py)."""
    jenkins.fault = fault
    server, url, store = serve(tmp_path, jenkins.url)
    try:
        status, answer, took = post(url + "/hooks/release", body_of(release_payload(merged_at=time.time())), "g-1")
        assert status == 202 and answer["queued"] is True, answer
        assert took < 1.0, f"the answer waited for Jenkins ({took:.1f} s)"
        wait_for(lambda: (store.entries(("pending",)) or [None])[0] is not None
                 and store.entries(("pending",))[0].attempts >= 1)  # fmt: skip
        jenkins.fault = None
        wait_for(lambda: not store.entries(("pending",)))
        assert len(jenkins.queued) == 1 and jenkins.queued[0]["commit"] == MERGE_SHA
        assert all(p == jenkins.queued[0] for p in jenkins.received)
        health = json.loads(urllib.request.urlopen(url + "/healthz", timeout=5).read())
        assert health["status"] == "ok" and health["pending"] == 0
    finally:
        server.shutdown()
        server.server_close()


def test_healthz_says_what_waits_and_why(tmp_path: Path) -> None:
    server, url, _ = serve(tmp_path, closed_port_url())
    try:
        assert post(url + "/hooks/release", body_of(release_payload(merged_at=time.time())), "g-9")[0] == 202
        deadline = time.monotonic() + 10
        while True:
            health = json.loads(urllib.request.urlopen(url + "/healthz", timeout=5).read())
            if health["last_failure"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert health["pending"] == 1 and health["last_failure"].startswith("unreachable"), health
    finally:
        server.shutdown()
        server.server_close()


def test_the_merge_age_and_replay_windows_cover_githubs_redelivery_window(tmp_path: Path) -> None:
    """GitHub redelivers only when asked and only deliveries of the past 3 days, counted from the delivery, which
    GitHub sends some time after the merge (seconds, or hours when its queues are backed up). A delivery first
    sent an hour after its merge and redelivered in the last minute of its window must pass the merge-age check,
    and every accepted key must be remembered at least as long as a delivery carrying it can pass."""
    assert REDELIVERY_WINDOW_S == 3 * 86400
    assert CONFIG.max_merge_age_s >= REDELIVERY_WINDOW_S + DELIVERY_LAG_S
    first_sent = T0 - REDELIVERY_WINDOW_S + 60  # redelivered now, at T0: the window's last minute
    late = release_payload(merged_at=first_sent - 3600)
    assert verify_delivery(github(late, "late-1"), CONFIG, None, T0).commit == MERGE_SHA  # type: ignore[union-attr]
    store = ReplayStore(tmp_path / "s.sqlite", CONFIG.replay_window_s)
    verify_delivery(github(late, "late-2"), CONFIG, store, T0)
    with pytest.raises(ReplayError):  # redelivered once more: still fresh enough, and remembered
        verify_delivery(github(late, "late-2"), CONFIG, store, T0 + 30)
    assert store.window_s >= CONFIG.max_merge_age_s + CONFIG.max_skew_s  # remembered while it could pass
    from release_receiver.cli import default_store_window

    assert default_store_window(CONFIG) >= CONFIG.max_merge_age_s + CONFIG.max_skew_s
    # The CLI's defaults are the same numbers: `serve` and `verify` without --max-merge-age.
    from release_receiver.cli import main

    option = next(p for p in main.commands["serve"].params if p.name == "max_merge_age")
    assert option.default == CONFIG.max_merge_age_s


def cli(*args: str) -> Any:
    import subprocess
    import sys

    from tests.pipeline.conftest import REPO

    return subprocess.run([sys.executable, "-m", "release_receiver", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)  # fmt: skip


def test_the_health_and_outbox_commands(tmp_path: Path) -> None:
    """`health URL` is the compose health check; `outbox` shows an admin what waits, `--retry` sends it now."""
    server, url, store = serve(tmp_path, closed_port_url())
    try:
        assert post(url + "/hooks/release", body_of(release_payload(merged_at=time.time())), "g-h")[0] == 202
        healthy = cli("health", url + "/healthz")
        assert healthy.returncode == 0 and json.loads(healthy.stdout)["pending"] == 1, healthy.stderr
    finally:
        server.shutdown()
        server.server_close()
    down = cli("health", url + "/healthz", "--timeout", "1")
    assert down.returncode == 1 and "unhealthy" in down.stderr
    store.failed(store.entries()[0].release_key, "refused: filter", time.time() + 3600, time.time(), terminal=True)
    listed = cli("outbox", "--store", str(store.path))
    assert listed.returncode == 0 and listed.stdout.startswith("refused") and "refused: filter" in listed.stdout
    retried = cli("outbox", "--store", str(store.path), "--retry")
    assert retried.returncode == 0 and retried.stdout.startswith("pending") and "1 release(s) due now" in retried.stderr
