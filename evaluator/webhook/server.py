"""A tiny receiver on 127.0.0.1 behind frpc: verify, then forward the parameters to Jenkins.

frpc exposes only the webhook path of this server; Jenkins itself is never reachable from outside. An
accepted release merge is forwarded as a small JSON document of parameters to the Generic Webhook Trigger
endpoint, signed again with HMAC-SHA256 (Jenkins checks it with its own whitelist entry), so Jenkins accepts
only what this receiver let through. If forwarding fails, the delivery id is forgotten so the sender's retry
is not refused as a replay.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from evaluator.webhook.errors import WebhookError
from evaluator.webhook.payload import Ignored
from evaluator.webhook.replay import ReplayStore
from evaluator.webhook.signature import sign
from evaluator.webhook.verify import Delivery, VerifierConfig, verify_delivery

MAX_BODY = 1024 * 1024  # GitHub caps payloads at 25 MB; a pull_request event is far below 1 MiB.


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
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()


@dataclass(frozen=True)
class ReceiverConfig:
    path: str
    verifier: VerifierConfig
    store: ReplayStore
    forward: Callable[[dict[str, Any]], None] | None = None
    clock: Callable[[], float] = time.time


def make_handler(config: ReceiverConfig) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to `config` (http.server instantiates one per request)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "evaluator-webhook"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"webhook {self.address_string()} {format % args}\n")

        def _answer(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method", "message": "POST only"})

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != config.path:
                self._answer(HTTPStatus.NOT_FOUND, {"error": "path", "message": "unknown path"})
                return
            length_header = self.headers.get("Content-Length")
            if length_header is None or not length_header.isdigit():
                self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "length", "message": "Content-Length required"})
                return
            length = int(length_header)
            if length > MAX_BODY:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "size", "message": "body too large"})
                return
            delivery = Delivery(
                body=self.rfile.read(length),
                signature=self.headers.get("X-Hub-Signature-256"),
                delivery_id=self.headers.get("X-GitHub-Delivery"),
                event=self.headers.get("X-GitHub-Event"),
                timestamp=self.headers.get("X-Release-Timestamp"),
            )
            try:
                outcome = verify_delivery(delivery, config.verifier, config.store, config.clock())
            except WebhookError as exc:
                self._answer(exc.status, {"error": exc.reason, "message": exc.message})
                return
            if isinstance(outcome, Ignored):
                self._answer(HTTPStatus.OK, {"ignored": outcome.reason})
                return
            params = outcome.as_json()
            if config.forward is not None:
                try:
                    config.forward(params)
                except (OSError, urllib.error.URLError) as exc:
                    config.store.forget(outcome.delivery_id)
                    self._answer(HTTPStatus.BAD_GATEWAY, {"error": "forward", "message": f"Jenkins: {exc}"})
                    return
            self._answer(HTTPStatus.ACCEPTED, {"accepted": params})

    return Handler


def make_server(host: str, port: int, config: ReceiverConfig) -> ThreadingHTTPServer:
    """Bind (port 0 picks a free one); the caller runs serve_forever()."""
    return ThreadingHTTPServer((host, port), make_handler(config))
