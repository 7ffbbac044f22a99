"""Forward accepted releases to Jenkins until Jenkins acknowledges each one, whatever happens in between.

The receiver answers GitHub as soon as a release is durable in the store (replay.py); this worker does the rest,
apart from the request: it forwards each pending release to the Generic Webhook Trigger, signed, and retries
with exponential backoff (capped) while Jenkins is down, slow, or answers something it cannot trust. Every
failure is classified, so the store, the log and /healthz say why a release waits:

  unreachable  no connection (refused, no route, DNS)                      not received: retry
  timeout      no answer in time                                            maybe queued: retry
  truncated    the answer stopped short (http.client.IncompleteRead, a
               connection closed mid-answer)                               maybe queued: retry
  protocol     not HTTP (BadStatusLine and the like)                        maybe queued: retry
  server       5xx from Jenkins                                             maybe queued: retry
  rejected     403 (whitelist, HMAC) or 404 (job token): a configuration
               error an admin must fix; retried at the longest interval     not queued: retry
  unexpected   2xx whose body is not the plugin's answer                    maybe queued: retry
  refused      Jenkins answered that the job was not triggered (its
               filter refused the parameters): terminal, kept for the admin not queued: stop

A retry after "maybe queued" can reach Jenkins twice. Jenkins makes that harmless: identical parameters still
in the queue are merged into one item, and a build that finds its release already claimed stops before it does
anything (scripts/ci-pipeline/claim-release.sh). So each accepted release is released exactly once.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from release_receiver.replay import OutboxEntry, ReplayStore
from release_receiver.signature import sign

KINDS = ("unreachable", "timeout", "truncated", "protocol", "server", "rejected", "unexpected", "refused")


class ForwardFailure(Exception):
    """Why one forwarding attempt did not get an acknowledgement (see the module's table)."""

    def __init__(self, kind: str, detail: str) -> None:
        assert kind in KINDS, kind
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail

    @property
    def terminal(self) -> bool:
        return self.kind == "refused"

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"[:500]


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def classify(exc: BaseException) -> ForwardFailure:
    """The failure kind of an exception raised while forwarding (anything not listed is `protocol`)."""
    if isinstance(exc, ForwardFailure):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        status = exc.code
        if status >= 500:
            return ForwardFailure("server", f"HTTP {status}")
        if status in (401, 403, 404):
            return ForwardFailure("rejected", f"HTTP {status}: check the whitelist, HMAC key and job token")
        return ForwardFailure("rejected", f"HTTP {status}")
    if isinstance(exc, urllib.error.URLError):  # wraps the socket error of the connection
        return (
            classify(exc.reason)
            if isinstance(exc.reason, BaseException)
            else ForwardFailure("unreachable", str(exc.reason))
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return ForwardFailure("timeout", _reason(exc))
    if isinstance(exc, http.client.IncompleteRead | http.client.RemoteDisconnected | ConnectionResetError):
        return ForwardFailure("truncated", _reason(exc))
    if isinstance(exc, ConnectionError | socket.gaierror):
        return ForwardFailure("unreachable", _reason(exc))
    if isinstance(exc, http.client.HTTPException):
        return ForwardFailure("protocol", _reason(exc))
    if isinstance(exc, OSError):
        return ForwardFailure("unreachable", _reason(exc))
    return ForwardFailure("protocol", _reason(exc))


def acknowledged(status: int, body: bytes) -> None:
    """Raise ForwardFailure unless this is the Generic Webhook Trigger saying it queued the job.

    generic-webhook-trigger 2.4.1 (GenericWebHookRequestReceiver.doInvoke): 200 {"jobs": {NAME: {"triggered":
    true, "id": QUEUE_ID, ...}}, "message": "Triggered jobs."}; `triggered` is false when the job's regexp filter
    did not match the parameters."""
    try:
        document = json.loads(body)
        jobs = document["jobs"]
        results = list(jobs.values())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ForwardFailure("unexpected", f"HTTP {status} without the plugin's answer: {body[:120]!r}") from None
    if not results or not all(isinstance(r, dict) for r in results):
        raise ForwardFailure("unexpected", f"HTTP {status}: no job in the answer: {body[:120]!r}")
    if not all(r.get("triggered") is True for r in results):
        raise ForwardFailure("refused", f"the release job was not triggered: {body[:200]!r}")


@dataclass(frozen=True)
class Forwarder:
    """Where accepted parameters go, and the secret Jenkins verifies them with."""

    url: str
    secret: bytes
    token: str | None = None  # Generic Webhook Trigger job token, sent as a header (never in the URL)
    timeout_s: float = 10.0

    def __call__(self, params: dict[str, Any]) -> None:
        body = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(self.secret, body)}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status, answer = response.status, response.read()
        except Exception as exc:  # every failure is classified, none escapes
            raise classify(exc) from exc
        acknowledged(status, answer)


@dataclass(frozen=True)
class Backoff:
    """Seconds before attempt n+1 after n failures: first_s doubling up to max_s (rejected: max_s at once)."""

    first_s: float = 2.0
    max_s: float = 300.0

    def delay(self, attempts: int, failure: ForwardFailure) -> float:
        if failure.kind == "rejected":
            return self.max_s
        return float(min(self.max_s, self.first_s * 2 ** max(0, attempts - 1)))


class OutboxWorker:
    """One thread that forwards due releases, one at a time, oldest first."""

    def __init__(
        self,
        store: ReplayStore,
        forward: Callable[[dict[str, Any]], None],
        clock: Callable[[], float] = time.time,
        backoff: Backoff = Backoff(),
        poll_s: float = 5.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.forward = forward
        self.clock = clock
        self.backoff = backoff
        self.poll_s = poll_s
        self.log = log or (lambda line: print(f"release-receiver outbox: {line}", file=sys.stderr, flush=True))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attempt(self, entry: OutboxEntry) -> ForwardFailure | None:
        """Forward one release and record the outcome; the failure, if any."""
        now = self.clock()
        try:
            self.forward(entry.params)
        except Exception as exc:  # ForwardFailure from Forwarder, anything else from a custom forward
            failure = classify(exc)
            attempts = entry.attempts + 1
            next_at = now + self.backoff.delay(attempts, failure)
            self.store.failed(entry.release_key, str(failure), next_at, self.clock(), failure.terminal)
            verdict = (
                "refused, not retried" if failure.terminal else f"attempt {attempts}, next in {next_at - now:.0f} s"
            )
            self.log(f"{entry.release_key}: {failure} ({verdict})")
            return failure
        self.store.delivered(entry.release_key, self.clock())
        self.log(f"{entry.release_key}: delivered after {entry.attempts + 1} attempt(s)")
        return None

    def run_due(self) -> int:
        """Forward everything due now; how many attempts were made."""
        made = 0
        while not self._stop.is_set():
            due = self.store.due(self.clock(), limit=1)
            if not due:
                return made
            self.attempt(due[0])
            made += 1
        return made

    def wake(self) -> None:
        """A release was just accepted: forward it now rather than at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
                upcoming = self.store.next_due()
            except Exception as exc:  # the store is unreadable for a moment: say so, keep the thread
                self.log(f"cannot read the outbox: {_reason(exc)}")
                upcoming = None
            wait = self.poll_s if upcoming is None else min(self.poll_s, max(0.0, upcoming - self.clock()))
            self._wake.wait(wait)
            self._wake.clear()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="release-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
