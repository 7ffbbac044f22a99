"""The receiver's store: what was accepted (replay protection) and what is still to be forwarded (the outbox).

Replay keys. Two per accepted delivery: its delivery id (GitHub's "redeliver" reuses it) and, for a release
merge, the release itself (repository, PR and merge commit, all inside the signed body). The second is what
stops a replay: X-GitHub-Delivery is not signed, so a captured body and signature re-sent under a new id would
pass a check on the id alone. A delivery is refused when any of its keys is already recorded. Keys older than
the window are purged; the window must cover every delivery the staleness checks still let through
(verify_delivery enforces that).

The outbox. An accepted release is written here in the same transaction as its keys, and only then does the
receiver answer 202: from that moment it is durable, and the forwarder (outbox.py) delivers it to Jenkins with
retries until Jenkins acknowledges it, however long Jenkins is away. A pending release is never purged.

SQLite gives atomic "insert unless present" across processes (the CLI may run once per delivery, the receiver
in threads); every write takes the write lock up front (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_receiver.errors import ConfigError, ReplayError

if TYPE_CHECKING:
    from release_receiver.payload import ReleaseParams

_DELIVERY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, seen_at REAL NOT NULL)",
    # state: pending (to forward), delivered (Jenkins acknowledged), refused (Jenkins answered and will never
    # build it: kept for the admin, `release-receiver outbox --retry` puts it back).
    "CREATE TABLE IF NOT EXISTS outbox (release_key TEXT PRIMARY KEY, params TEXT NOT NULL,"
    " accepted_at REAL NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at REAL NOT NULL, last_failure TEXT, finished_at REAL)",
)
STATES = ("pending", "delivered", "refused")


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


@dataclass(frozen=True)
class OutboxEntry:
    """One accepted release and how its forwarding went."""

    release_key: str
    params: dict[str, Any]
    accepted_at: float
    state: str
    attempts: int
    next_attempt_at: float
    last_failure: str | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OutboxEntry:
        return cls(
            release_key=row["release_key"],
            params=json.loads(row["params"]),
            accepted_at=row["accepted_at"],
            state=row["state"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_failure=row["last_failure"],
            finished_at=row["finished_at"],
        )


class ReplayStore:
    """A file of keys (delivery ids, releases) seen within the last `window_s` seconds, and the outbox."""

    def __init__(self, path: Path, window_s: float) -> None:
        if window_s <= 0:
            raise ConfigError(f"replay window must be positive, got {window_s}")
        self.path = path
        self.window_s = window_s
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                for statement in _SCHEMA:
                    db.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{path}: cannot open the replay store: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, taking the write lock up front.
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: replay store error: {exc}") from None
        finally:
            db.close()

    def remember(self, keys: str | Sequence[str], now: float, release: ReleaseParams | None = None) -> None:
        """Record every key at once, and `release` in the outbox; raise ReplayError (recording nothing) if any key
        is already recorded."""
        wanted = _keys(keys)
        with self._write() as db:
            db.execute("DELETE FROM deliveries WHERE seen_at < ?", (now - self.window_s,))
            db.execute("DELETE FROM outbox WHERE state != 'pending' AND accepted_at < ?", (now - self.window_s,))
            for key in wanted:
                if db.execute("SELECT 1 FROM deliveries WHERE id = ?", (key,)).fetchone() is not None:
                    raise ReplayError(f"{key} was already accepted (replay)")
            db.executemany("INSERT INTO deliveries (id, seen_at) VALUES (?, ?)", [(k, now) for k in wanted])
            if release is not None:
                db.execute(
                    "INSERT INTO outbox (release_key, params, accepted_at, state, next_attempt_at)"
                    " VALUES (?, ?, ?, 'pending', ?)",
                    (release.replay_key, json.dumps(release.as_json(), sort_keys=True), now, now),
                )

    def forget(self, keys: str | Sequence[str]) -> None:
        """Drop keys again (an admin's tool; the receiver itself never forgets an accepted delivery)."""
        with self._write() as db:
            db.executemany("DELETE FROM deliveries WHERE id = ?", [(k,) for k in _keys(keys)])

    def __contains__(self, key: object) -> bool:
        db = self._connect()
        try:
            row = db.execute("SELECT 1 FROM deliveries WHERE id = ?", (key,)).fetchone()
        finally:
            db.close()
        return row is not None

    # The outbox.

    def _select(self, sql: str, args: tuple[Any, ...] = ()) -> list[OutboxEntry]:
        db = self._connect()
        try:
            return [OutboxEntry.from_row(row) for row in db.execute(sql, args).fetchall()]
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: replay store error: {exc}") from None
        finally:
            db.close()

    def due(self, now: float, limit: int = 16) -> list[OutboxEntry]:
        """Pending releases whose next attempt is due, oldest first."""
        return self._select(
            "SELECT * FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, accepted_at LIMIT ?",
            (now, limit),
        )

    def entries(self, states: Sequence[str] = STATES) -> list[OutboxEntry]:
        marks = ",".join("?" for _ in states)
        return self._select(f"SELECT * FROM outbox WHERE state IN ({marks}) ORDER BY accepted_at", tuple(states))

    def next_due(self) -> float | None:
        """When the next pending release is due (None: nothing pending)."""
        db = self._connect()
        try:
            row = db.execute("SELECT MIN(next_attempt_at) AS at FROM outbox WHERE state = 'pending'").fetchone()
        finally:
            db.close()
        return None if row is None or row["at"] is None else float(row["at"])

    def delivered(self, release_key: str, now: float) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, finished_at = ?, last_failure = NULL"
                " WHERE release_key = ? AND state = 'pending'",
                (now, release_key),
            )

    def failed(self, release_key: str, failure: str, next_attempt_at: float, now: float, terminal: bool) -> None:
        """Record a failed attempt: retry at `next_attempt_at`, or (terminal) mark it refused."""
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_failure = ?, next_attempt_at = ?, state = ?,"
                " finished_at = ? WHERE release_key = ? AND state = 'pending'",
                (failure, next_attempt_at, "refused" if terminal else "pending", now if terminal else None,
                 release_key),
            )  # fmt: skip

    def retry_now(self, now: float) -> int:
        """Every pending or refused release is due now (an admin's "Jenkins is back" or "config fixed")."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?, finished_at = NULL"
                " WHERE state IN ('pending', 'refused')",
                (now,),
            )
            return cursor.rowcount
