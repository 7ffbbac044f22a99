"""A stand-in for Jenkins' Generic Webhook Trigger endpoint, as strict as the plugin, plus the faults a network has.

Modelled on generic-webhook-trigger 2.4.1 (GenericWebHookRequestReceiver.doInvoke, GenericTrigger.trigger):
- the whitelist entry's HMAC-SHA256 of the raw body in X-Hub-Signature-256, else 403 "... did not pass whitelist";
- the job token (`Authorization: Bearer`), else 404 "Did not find any jobs with GenericTrigger configured!";
- the job's regexp filter on $COMMIT (`^[0-9a-f]{40}$`): no match answers 200 with `"triggered": false`;
- else the build is queued: 200 {"jobs": {"release": {"triggered": true, "id": N, "url": "queue/item/N/", ...}},
  "message": "Triggered jobs."}. Jenkins' queue merges an item whose parameters equal one still waiting
  (hudson.model.Queue: ParametersAction.shouldSchedule), so `queued` keeps the distinct ones.

`fault` makes it misbehave the way a real network or a restarting Jenkins does: refuse (the port is closed),
hang (answers after the client's timeout, having queued the build first), truncate (a Content-Length longer
than the body, then close: http.client.IncompleteRead), garbage (no HTTP status line), 503."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FORWARD_SECRET = b"jenkins-whitelist-secret"
TOKEN = "gwt-token"


class GwtStandin:
    def __init__(self, hang_s: float = 3.0) -> None:
        self.fault: str | None = None
        self.hang_s = hang_s
        self.received: list[dict[str, Any]] = []  # every invocation that passed whitelist and token
        self.queued: list[dict[str, Any]] = []  # distinct queue items (identical parameters merged)
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                fault = outer.fault
                if fault == "garbage":
                    self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
                    self.close_connection = True
                    return
                if fault == "503":
                    self._send(503, {"message": "Jenkins is restarting"})
                    return
                expected = "sha256=" + hmac.new(FORWARD_SECRET, body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(self.headers.get("X-Hub-Signature-256", ""), expected):
                    self._send(403, {"message": "Sender did not pass whitelist.\nHMAC verification failed."})
                    return
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(404, {"message": "Did not find any jobs with GenericTrigger configured!"})
                    return
                params = json.loads(body)
                if not re.fullmatch(r"[0-9a-f]{40}", str(params.get("commit", ""))):
                    self._send(200, {"jobs": {"release": {"triggered": False, "id": 0}}, "message": "Triggered jobs."})
                    return
                with outer.lock:
                    outer.received.append(params)
                    if params not in outer.queued:
                        outer.queued.append(params)
                    item = outer.queued.index(params) + 1
                answer = {"jobs": {"release": {"triggered": True, "id": item, "url": f"queue/item/{item}/"}},
                          "message": "Triggered jobs."}  # fmt: skip
                if fault == "hang":
                    time.sleep(outer.hang_s)
                if fault == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Length", "500")
                    self.end_headers()
                    self.wfile.write(json.dumps(answer).encode()[:10])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self._send(200, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/generic-webhook-trigger/invoke"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def closed_port_url() -> str:
    """A URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/generic-webhook-trigger/invoke"
