"""Remember what was accepted for a while, so a captured request cannot start a second build.

Two keys per accepted delivery: its delivery id (GitHub's "redeliver" reuses it) and, for a release merge,
the release itself (repository, PR and merge commit, all inside the signed body). The second is what stops a
replay: X-GitHub-Delivery is not signed, so a captured body and signature re-sent under a new id would pass a
check on the id alone. A delivery is refused when any of its keys is already recorded.

SQLite gives an atomic "insert unless present" across processes (the CLI may run once per delivery, the
receiver in threads); entries older than the window are purged on every call, so the file stays small. The
window must cover every delivery the staleness checks still let through: otherwise a key could be forgotten
while its body is still fresh. verify_delivery enforces that.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from release_receiver.errors import ConfigError, ReplayError

_DELIVERY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def check_delivery_id(delivery_id: str | None) -> str:
    """A delivery id is required and must be a short token (GitHub sends a GUID)."""
    if delivery_id is None or delivery_id == "":
        raise ReplayError("missing delivery id (X-GitHub-Delivery)")
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise ReplayError("delivery id must be 1-128 characters of [A-Za-z0-9._:-]")
    return delivery_id


def _keys(keys: str | Sequence[str]) -> list[str]:
    found = [keys] if isinstance(keys, str) else list(keys)
    if not found or any(not k for k in found):
        raise ConfigError("a replay key must be a non-empty string")
    return found


class ReplayStore:
    """A file of keys (delivery ids, releases) seen within the last `window_s` seconds."""

    def __init__(self, path: Path, window_s: float) -> None:
        if window_s <= 0:
            raise ConfigError(f"replay window must be positive, got {window_s}")
        self.path = path
        self.window_s = window_s
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, seen_at REAL NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{path}: cannot open the replay store: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, taking the write lock up front.
        return sqlite3.connect(self.path, timeout=10.0, isolation_level=None)

    def remember(self, keys: str | Sequence[str], now: float) -> None:
        """Record every key at once; raise ReplayError (recording none) if any is already recorded."""
        wanted = _keys(keys)
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM deliveries WHERE seen_at < ?", (now - self.window_s,))
            for key in wanted:
                if db.execute("SELECT 1 FROM deliveries WHERE id = ?", (key,)).fetchone() is not None:
                    db.execute("ROLLBACK")
                    raise ReplayError(f"{key} was already accepted (replay)")
            db.executemany("INSERT INTO deliveries (id, seen_at) VALUES (?, ?)", [(k, now) for k in wanted])
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: replay store error: {exc}") from None
        finally:
            db.close()

    def forget(self, keys: str | Sequence[str]) -> None:
        """Drop keys again, e.g. when forwarding failed and the sender will retry the same delivery."""
        db = self._connect()
        try:
            db.executemany("DELETE FROM deliveries WHERE id = ?", [(k,) for k in _keys(keys)])
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: replay store error: {exc}") from None
        finally:
            db.close()

    def __contains__(self, key: object) -> bool:
        db = self._connect()
        try:
            row = db.execute("SELECT 1 FROM deliveries WHERE id = ?", (key,)).fetchone()
        finally:
            db.close()
        return row is not None
