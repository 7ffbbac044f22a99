"""A small receiver behind frpc: verify, make the release durable, answer; the outbox forwards it to Jenkins.

frpc exposes only the webhook path of this server; Jenkins itself is never reachable from outside. An accepted
release merge is written to the store's outbox together with its replay keys, and answered 202 once that
transaction committed: GitHub gets its answer well within its 10 s, whether Jenkins is up or not. The outbox
worker (outbox.py) then forwards it as a small JSON document of parameters to the Generic Webhook Trigger
endpoint, signed again with HMAC-SHA256 (Jenkins checks it with its own whitelist entry), until Jenkins
acknowledges it. GET /healthz says whether the receiver serves and what the outbox holds.

The server faces the internet (through the tunnel), so a slow or silent client must not hold it: requests run
on a fixed pool of worker threads with a bounded queue (beyond it a connection is answered 503 at once, never
given a thread of its own), and each request must arrive whole within `read_timeout_s` (a watchdog shuts the
socket of one that does not, whatever pace it trickles bytes at).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from release_receiver.errors import ConfigError, WebhookError
from release_receiver.outbox import Backoff, Forwarder, OutboxWorker
from release_receiver.payload import Ignored
from release_receiver.replay import ReplayStore
from release_receiver.verify import Delivery, VerifierConfig, verify_delivery

__all__ = ["BoundedHTTPServer", "Forwarder", "ReceiverConfig", "health", "make_handler", "make_server"]

HEALTH_PATH = "/healthz"
MAX_BODY = 1024 * 1024  # GitHub caps payloads at 25 MB; a pull_request event is far below 1 MiB.
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 10\r\n"
    b'Connection: close\r\nContent-Length: 48\r\n\r\n{"error": "busy", "message": "try again later"}\n'
)


@dataclass(frozen=True)
class ReceiverConfig:
    """`forward`: where accepted releases go (a Forwarder to Jenkins); None only verifies and records."""

    path: str
    verifier: VerifierConfig
    store: ReplayStore
    forward: Callable[[dict[str, Any]], None] | None = None
    clock: Callable[[], float] = time.time
    read_timeout_s: float = 10.0
    workers: int = 4
    queue: int = 16
    backoff: Backoff = field(default_factory=Backoff)
    poll_s: float = 5.0

    def __post_init__(self) -> None:
        if self.read_timeout_s <= 0 or self.workers < 1 or self.queue < 0:
            raise ConfigError("read timeout and workers must be positive, the queue non-negative")


class _Watchdog:
    """One thread that shuts down sockets whose deadline passed: that unblocks any read on them at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadlines: list[tuple[float, int, socket.socket]] = []
        self._live: set[int] = set()
        self._ids = itertools.count()
        self._wake = threading.Event()
        self._stopped = False
        threading.Thread(target=self._run, name="webhook-watchdog", daemon=True).start()

    def watch(self, sock: socket.socket, seconds: float) -> int:
        with self._lock:
            ident = next(self._ids)
            self._live.add(ident)
            heapq.heappush(self._deadlines, (time.monotonic() + seconds, ident, sock))
        self._wake.set()
        return ident

    def release(self, ident: int) -> None:
        with self._lock:
            self._live.discard(ident)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped:
            expired = []
            with self._lock:
                now = time.monotonic()
                while self._deadlines and self._deadlines[0][0] <= now:
                    _, ident, sock = heapq.heappop(self._deadlines)
                    if ident in self._live:
                        self._live.discard(ident)
                        expired.append(sock)
                delay = self._deadlines[0][0] - now if self._deadlines else 1.0
            for sock in expired:
                with contextlib.suppress(OSError):  # already closed by its worker
                    sock.shutdown(socket.SHUT_RDWR)
            self._wake.wait(timeout=max(0.05, min(delay, 1.0)))
            self._wake.clear()


class BoundedHTTPServer(HTTPServer):
    """HTTPServer whose requests run on `workers` threads, at most `queue` more waiting, each within a deadline."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], config: ReceiverConfig):
        super().__init__(address, handler)
        self.read_timeout_s = config.read_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="webhook")
        self._slots = threading.BoundedSemaphore(config.workers + config.queue)
        self._watchdog = _Watchdog()
        self._watched: dict[int, int] = {}
        self.outbox: OutboxWorker | None = None
        if config.forward is not None:
            self.outbox = OutboxWorker(config.store, config.forward, config.clock, config.backoff, config.poll_s)
            self.outbox.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        # Per read/write timeout, and the whole request (queue time included) under the watchdog's deadline.
        request.settimeout(self.read_timeout_s)
        self._watched[request.fileno()] = self._watchdog.watch(request, self.read_timeout_s)
        self._pool.submit(self._work, request, client_address)

    def request_received(self, request: socket.socket) -> None:
        """The handler read the whole request: the deadline is over (forwarding has its own timeout)."""
        ident = self._watched.pop(request.fileno(), None)
        if ident is not None:
            self._watchdog.release(ident)

    def _work(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.request_received(request)
            self.shutdown_request(request)
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        try:
            request.settimeout(1.0)
            request.sendall(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self._watchdog.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.outbox is not None:
            self.outbox.stop()


def health(store: ReplayStore, now: float) -> dict[str, Any]:
    """What /healthz answers: the receiver serves, and what waits in the outbox (and why)."""
    pending = store.entries(("pending",))
    refused = store.entries(("refused",))
    oldest = min((e.accepted_at for e in pending), default=None)
    return {
        "status": "ok",
        "pending": len(pending),
        "oldest_pending_s": None if oldest is None else round(now - oldest, 1),
        "last_failure": next((e.last_failure for e in reversed(pending) if e.last_failure), None),
        "refused": [e.release_key for e in refused],
    }


def make_handler(config: ReceiverConfig) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to `config` (http.server instantiates one per request)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "release-receiver"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"webhook {self.address_string()} {format % args}\n")

        def _answer(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                self.close_connection = True  # the client is gone (or was cut off): nothing to tell it

        def _received(self) -> None:
            if isinstance(self.server, BoundedHTTPServer):
                self.server.request_received(self.connection)

        def _read_body(self, length: int) -> bytes | None:
            """The whole body, or None when the client stopped sending before the deadline."""
            chunks, missing = [], length
            try:
                while missing > 0:
                    chunk = self.rfile.read1(min(missing, 65536))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    missing -= len(chunk)
            except (TimeoutError, OSError):
                pass
            return b"".join(chunks) if missing == 0 else None

        def do_GET(self) -> None:
            self._received()
            if self.path.split("?", 1)[0] == HEALTH_PATH:
                try:
                    self._answer(HTTPStatus.OK, health(config.store, config.clock()))
                except WebhookError as exc:
                    self._answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": exc.reason, "message": exc.message})
                return
            self._answer(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method", "message": "POST only"})

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != config.path:
                self._received()
                self._answer(HTTPStatus.NOT_FOUND, {"error": "path", "message": "unknown path"})
                return
            length_header = self.headers.get("Content-Length")
            if length_header is None or not length_header.isdigit():
                self._received()
                self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "length", "message": "Content-Length required"})
                return
            length = int(length_header)
            if length > MAX_BODY:
                self._received()
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "size", "message": "body too large"})
                return
            body = self._read_body(length)
            self._received()
            if body is None:
                self._answer(HTTPStatus.REQUEST_TIMEOUT, {"error": "timeout", "message": "incomplete body"})
                return
            delivery = Delivery(
                body=body,
                signature=self.headers.get("X-Hub-Signature-256"),
                delivery_id=self.headers.get("X-GitHub-Delivery"),
                event=self.headers.get("X-GitHub-Event"),
                timestamp=self.headers.get("X-Release-Timestamp"),
            )
            forwarding = config.forward is not None
            try:
                outcome = verify_delivery(delivery, config.verifier, config.store, config.clock(), enqueue=forwarding)
            except WebhookError as exc:
                self._answer(exc.status, {"error": exc.reason, "message": exc.message})
                return
            if isinstance(outcome, Ignored):
                self._answer(HTTPStatus.OK, {"ignored": outcome.reason})
                return
            # Durable from here on (the outbox row committed with the replay keys): the answer can be 202.
            server = self.server
            if isinstance(server, BoundedHTTPServer) and server.outbox is not None:
                server.outbox.wake()
            self._answer(HTTPStatus.ACCEPTED, {"accepted": outcome.as_json(), "queued": forwarding})

    return Handler


def make_server(host: str, port: int, config: ReceiverConfig) -> BoundedHTTPServer:
    """Bind (port 0 picks a free one); the caller runs serve_forever()."""
    return BoundedHTTPServer((host, port), make_handler(config), config)
