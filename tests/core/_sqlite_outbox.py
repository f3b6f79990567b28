"""A small outbox on SQLite (the standard library's), implementing the core's Outbox protocol.

A test double, not a product: the Django and Flask adapters ship the real outboxes. It shows
what the protocol asks of one: ``add`` writes into the transaction open in this thread (and
refuses when none is), ``claim`` leases rows so two relays do not take the same events (SQLite
has no ``SKIP LOCKED``; an expired lease is taken again, as after a relay crash), ``done``
marks rows dispatched.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from thorn_core.message import EventMessage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS thorn_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message TEXT NOT NULL,
    leased_until REAL NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0
)
"""


class SQLiteOutbox:
    """An outbox table in the SQLite file at ``path``; ``lease`` seconds per claim."""

    def __init__(self, path: str | Path, *, lease: float = 30.0) -> None:
        self.path = str(path)
        self.lease = lease
        self._local = threading.local()
        with contextlib.closing(self._connect()) as connection, connection:
            connection.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        return connection

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction of the application: commit on success, roll back on an exception."""
        connection = self._connect()
        connection.execute("BEGIN")
        self._local.connection = connection
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        else:
            connection.execute("COMMIT")
        finally:
            self._local.connection = None
            connection.close()

    def add(self, message: EventMessage) -> bool:
        """Store ``message`` in this thread's open transaction; False when none is open."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            return False
        connection.execute(
            "INSERT INTO thorn_outbox (message) VALUES (?)", (json.dumps(message.to_dict()),)
        )
        return True

    def claim(self, limit: int) -> list[tuple[Any, EventMessage]]:
        """Lease up to ``limit`` undone rows whose lease expired, oldest first."""
        now = time.time()
        with contextlib.closing(self._connect()) as connection:
            connection.execute("BEGIN IMMEDIATE")
            rows = connection.execute(
                "SELECT id, message FROM thorn_outbox WHERE done = 0 AND leased_until <= ? "
                "ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
            connection.executemany(
                "UPDATE thorn_outbox SET leased_until = ? WHERE id = ?",
                [(now + self.lease, ident) for ident, _ in rows],
            )
            connection.execute("COMMIT")
        return [(ident, EventMessage.from_dict(json.loads(text))) for ident, text in rows]

    def done(self, ids: Sequence[Any]) -> None:
        """Mark rows dispatched."""
        with contextlib.closing(self._connect()) as connection:
            connection.executemany(
                "UPDATE thorn_outbox SET done = 1 WHERE id = ?", [(ident,) for ident in ids]
            )

    def rows(self) -> list[tuple[int, str, bool]]:
        """Every row as (id, event name, done), for assertions."""
        with contextlib.closing(self._connect()) as connection:
            found = connection.execute("SELECT id, message, done FROM thorn_outbox ORDER BY id")
            return [(i, json.loads(text)["event"], bool(done)) for i, text, done in found]
