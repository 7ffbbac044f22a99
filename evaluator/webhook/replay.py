"""Remember accepted delivery ids for a while, so a captured request cannot start a second build.

SQLite gives an atomic "insert unless present" across processes (the CLI may run once per delivery, the
receiver in threads); entries older than the window are purged on every call, so the file stays small. The
window must be at least the timestamp max-age: otherwise an id could be replayed after it was forgotten
while its timestamp is still fresh. VerifierConfig enforces that.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from evaluator.webhook.errors import ConfigError, ReplayError

_DELIVERY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def check_delivery_id(delivery_id: str | None) -> str:
    """A delivery id is required and must be a short token (GitHub sends a GUID)."""
    if delivery_id is None or delivery_id == "":
        raise ReplayError("missing delivery id (X-GitHub-Delivery)")
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise ReplayError("delivery id must be 1-128 characters of [A-Za-z0-9._:-]")
    return delivery_id


class ReplayStore:
    """A file of delivery ids seen within the last `window_s` seconds."""

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

    def remember(self, delivery_id: str, now: float) -> None:
        """Record `delivery_id`; raise ReplayError if it is already recorded within the window."""
        check_delivery_id(delivery_id)
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM deliveries WHERE seen_at < ?", (now - self.window_s,))
            try:
                db.execute("INSERT INTO deliveries (id, seen_at) VALUES (?, ?)", (delivery_id, now))
            except sqlite3.IntegrityError:
                db.execute("COMMIT")
                raise ReplayError(f"delivery {delivery_id} was already accepted (replay)") from None
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: replay store error: {exc}") from None
        finally:
            db.close()

    def forget(self, delivery_id: str) -> None:
        """Drop an id again, e.g. when forwarding failed and the sender will retry the same delivery."""
        db = self._connect()
        try:
            db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: replay store error: {exc}") from None
        finally:
            db.close()

    def __contains__(self, delivery_id: object) -> bool:
        db = self._connect()
        try:
            row = db.execute("SELECT 1 FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
        finally:
            db.close()
        return row is not None
