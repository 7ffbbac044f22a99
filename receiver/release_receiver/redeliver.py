"""Ask GitHub for the hook's failed deliveries and redeliver them: GitHub never does it by itself.

GitHub's REST API (docs.github.com/en/rest/repos/webhooks, API version 2022-11-28):
- GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries?per_page=100 lists deliveries newest first, one entry per
  attempt (`id`, `guid`, `delivered_at`, `redelivery`, `status`, `status_code`, `event`, `action`); further
  pages through the `Link: <...cursor=...>; rel="next"` header; only deliveries of the past 3 days.
- POST /repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}/attempts redelivers one: 202 Accepted;
  400 or 422 otherwise ("You can redeliver webhook deliveries that occurred in the past 3 days").
- GitHub's own example (docs.github.com/en/webhooks/using-webhooks/automatically-redelivering-failed-deliveries-
  for-a-repository-webhook) groups attempts by `guid` (constant across redeliveries) and redelivers a guid only
  when none of its attempts succeeded.

Here an attempt succeeded when the receiver answered 2xx or 409 (it already holds that delivery or that release:
nothing is lost). The token needs "Webhooks: read and write" on the repository (a fine-grained token); it is
read from a file, never from a command line.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from release_receiver.errors import ConfigError

API_VERSION = "2022-11-28"
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubError(Exception):
    """The API refused or could not be reached (message names what and why)."""


@dataclass(frozen=True)
class Redelivery:
    guid: str
    delivery_id: int
    delivered_at: float
    status_code: int
    outcome: str  # "redelivered", or why not


def _when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _is_attempt(attempt: Any) -> bool:
    if not isinstance(attempt, dict) or not isinstance(attempt.get("guid"), str):
        return False
    if not isinstance(attempt.get("id"), int) or not isinstance(attempt.get("delivered_at"), str):
        return False
    try:
        _when(attempt["delivered_at"])
    except ValueError:
        return False
    return True


def succeeded(attempt: dict[str, Any]) -> bool:
    code = attempt.get("status_code")
    return isinstance(code, int) and (200 <= code < 300 or code == 409)


class GitHubHooks:
    """The two endpoints above, for one repository's hook."""

    def __init__(self, api_url: str, repository: str, hook_id: int, token: str, timeout_s: float = 30.0) -> None:
        if not api_url.startswith(("https://", "http://")):
            raise ConfigError(f"--api-url {api_url!r} is not an http(s) URL")
        self.base = f"{api_url.rstrip('/')}/repos/{repository}/hooks/{hook_id}"
        self.token = token
        self.timeout_s = timeout_s

    def _request(self, url: str, method: str = "GET") -> tuple[int, dict[str, str], Any]:
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None, headers={
            "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {self.token}", "User-Agent": "release-receiver",
        })  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
                return response.status, dict(response.headers), json.loads(raw) if raw.strip() else None
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", errors="replace")
            raise GitHubError(f"{method} {url}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            # HTTPException: a truncated answer (IncompleteRead) or one that is not HTTP (BadStatusLine).
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise GitHubError(f"{method} {url}: {reason}") from None

    def deliveries(self, since: float) -> Iterator[dict[str, Any]]:
        """Every attempt delivered at or after `since`, newest first (stops paging once older ones appear)."""
        url: str | None = f"{self.base}/deliveries?per_page=100"
        while url is not None:
            _, headers, page = self._request(url)
            if not isinstance(page, list):
                raise GitHubError(f"GET {url}: expected a list of deliveries, got {type(page).__name__}")
            for attempt in page:
                if not _is_attempt(attempt):
                    raise GitHubError(f"GET {url}: not a delivery (id, guid, delivered_at): {str(attempt)[:120]}")
                if _when(attempt["delivered_at"]) < since:
                    return
                yield attempt
            link = next((v for k, v in headers.items() if k.lower() == "link"), "")
            found = _NEXT.search(link)
            url = urllib.parse.urljoin(url, found.group(1)) if found else None

    def redeliver(self, delivery_id: int) -> None:
        status, _, _ = self._request(f"{self.base}/deliveries/{delivery_id}/attempts", method="POST")
        if status != 202:
            raise GitHubError(f"redelivery of {delivery_id}: HTTP {status}, expected 202")


def failed(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per guid whose attempts all failed, its newest attempt (the one to redeliver), oldest guid first."""
    by_guid: dict[str, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_guid.setdefault(attempt["guid"], []).append(attempt)
    chosen = [max(group, key=lambda a: _when(a["delivered_at"])) for group in by_guid.values()
              if not any(succeeded(a) for a in group)]  # fmt: skip
    return sorted(chosen, key=lambda a: _when(a["delivered_at"]))


def redeliver_failed(hooks: GitHubHooks, since: float, dry_run: bool = False) -> list[Redelivery]:
    """Redeliver every failed guid since `since`; what was done with each."""
    done = []
    for attempt in failed(list(hooks.deliveries(since))):
        outcome = "would redeliver" if dry_run else "redelivered"
        if not dry_run:
            try:
                hooks.redeliver(int(attempt["id"]))
            except GitHubError as exc:
                outcome = f"failed: {exc}"
        done.append(Redelivery(attempt["guid"], int(attempt["id"]), _when(attempt["delivered_at"]),
                               int(attempt.get("status_code") or 0), outcome))  # fmt: skip
    return done
