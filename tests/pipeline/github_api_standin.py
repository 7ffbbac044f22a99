"""A stand-in for GitHub's REST API of a repository webhook's deliveries, for `release-receiver redeliver`.

What it models (API version 2022-11-28; docs.github.com/en/rest/repos/webhooks "List deliveries for a repository
webhook", "Redeliver a delivery for a repository webhook"; docs.github.com/en/webhooks/testing-and-
troubleshooting-webhooks/redelivering-webhooks):
- every request needs `Authorization: Bearer TOKEN`: else 401 {"message": "Bad credentials"}; an unknown
  repository or hook: 404 {"message": "Not Found"};
- GET .../hooks/{hook_id}/deliveries?per_page=N&cursor=C: one entry per attempt, newest first, fields `id`,
  `guid`, `delivered_at`, `redelivery`, `duration`, `status`, `status_code`, `event`, `action`; `per_page` at most
  100 (default 30); the next page through `Link: <URL&cursor=...>; rel="next"`; only deliveries of the past 3 days
  ("You can view details about webhook deliveries from the past 3 days");
- POST .../deliveries/{delivery_id}/attempts: 202 Accepted with `{}`, and the delivery is sent again with the
  same X-GitHub-Delivery (guid) and body; a delivery older than 3 days: 422 {"message": "Validation Failed"}
  ("You can redeliver webhook deliveries that occurred in the past 3 days").

Each attempt is really sent to the hook's URL (the receiver under test) and recorded with the answer's status.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WINDOW_S = 3 * 86400


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubHooksStandin:
    def __init__(self, repository: str, hook_id: int, token: str, hook_url: str, clock: Any) -> None:
        self.repository, self.hook_id, self.token, self.hook_url, self.clock = (
            repository,
            hook_id,
            token,
            hook_url,
            clock,
        )
        self.attempts: list[dict[str, Any]] = []  # oldest first; the API lists them newest first
        self.requests: dict[str, tuple[dict[str, str], bytes]] = {}  # guid -> what GitHub sends
        self.redeliveries = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self) -> tuple[str, dict[str, list[str]]] | None:
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self._send(401, {"message": "Bad credentials"})
                    return None
                parsed = urllib.parse.urlsplit(self.path)
                prefix = f"/repos/{outer.repository}/hooks/{outer.hook_id}/deliveries"
                if not parsed.path.lower().startswith(prefix.lower()):  # owner and repo are not case sensitive
                    self._send(404, {"message": "Not Found"})
                    return None
                return parsed.path[len(prefix) :], urllib.parse.parse_qs(parsed.query)

            def do_GET(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                rest, query = routed
                if rest not in ("", "/"):
                    self._send(404, {"message": "Not Found"})
                    return
                per_page = min(100, int(query.get("per_page", ["30"])[0]))
                visible = [a for a in reversed(outer.attempts) if a["_at"] >= outer.clock() - WINDOW_S]
                start = 0
                if "cursor" in query:
                    start = next(i for i, a in enumerate(visible) if str(a["id"]) == query["cursor"][0])
                page = visible[start : start + per_page]
                headers = {}
                if start + per_page < len(visible):
                    cursor = visible[start + per_page]["id"]
                    link = f"{self.path.split('?')[0]}?per_page={per_page}&cursor={cursor}"
                    headers["Link"] = f'<http://127.0.0.1:{outer.port}{link}>; rel="next"'
                self._send(200, [{k: v for k, v in a.items() if not k.startswith("_")} for a in page], headers)

            def do_POST(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                rest, _ = routed
                parts = rest.strip("/").split("/")
                found = [a for a in outer.attempts if len(parts) == 2 and parts[1] == "attempts"
                         and str(a["id"]) == parts[0]]  # fmt: skip
                if not found:
                    self._send(404, {"message": "Not Found"})
                    return
                if found[0]["_at"] < outer.clock() - WINDOW_S:
                    self._send(422, {"message": "Validation Failed"})
                    return
                outer.redeliveries += 1
                self._send(202, {})
                outer.deliver(found[0]["guid"], redelivery=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.api_url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def deliver(self, guid: str, headers: dict[str, str] | None = None, body: bytes | None = None,
                redelivery: bool = False) -> int:  # fmt: skip
        """GitHub sending (or resending) one delivery to the hook URL; records the attempt."""
        if headers is not None and body is not None:
            self.requests[guid] = (headers, body)
        sent_headers, sent_body = self.requests[guid]
        request = urllib.request.Request(self.hook_url, data=sent_body, method="POST", headers=sent_headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                code = response.status
        except urllib.error.HTTPError as exc:
            code = exc.code
        except (urllib.error.URLError, OSError):
            code = 502  # what frps answers when frpc has no way through to the receiver
        self.attempts.append({
            "id": 10_000 + len(self.attempts), "guid": guid, "delivered_at": iso(self.clock()), "_at": self.clock(),
            "redelivery": redelivery, "duration": 0.1, "status": "OK" if 200 <= code < 300 else f"HTTP {code}",
            "status_code": code, "event": "pull_request", "action": "closed",
        })  # fmt: skip
        return code

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
