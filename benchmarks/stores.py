"""Stored-subscriber sources over SQLite and PostgreSQL, as an adapter would write them.

Each answers ``matching`` with one indexed ``event IN (candidate patterns)`` query and
counts its queries, so a benchmark can check that a send costs exactly one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from typing import Any

from thorn_core import Subscriber
from thorn_core.patterns import candidate_patterns
from thorn_core.subscribers import sender_key

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
_COLUMNS = "uuid, event, url, owner, hmac_secret, hmac_digest, content_type"


def _rows(count: int, matching: int, event: str, url: str) -> list[tuple[Any, ...]]:
    import uuid

    rows = []
    for i in range(count):
        # Non-matching subscribers spread over many other patterns, as on a real site.
        pattern = event if i < matching else f"svc{i % 997}.{'*' if i % 2 else f'e{i}'}"
        rows.append(
            (str(uuid.uuid4()), pattern, url, None, f"secret-{i}", "sha256", "application/json")
        )
    return rows


def _subscriber(row: tuple[Any, ...]) -> Subscriber:
    uuid_, event, url, owner, secret, digest, content_type = row
    return Subscriber(
        uuid=uuid_,
        event=event,
        url=url,
        user=owner,
        hmac_secret=secret,
        hmac_digest=digest,
        content_type=content_type,
    )


class SQLiteSubscribers:
    """Subscribers in an in-memory SQLite table with an index on ``event``."""

    def __init__(
        self,
        count: int,
        *,
        matching: int = 0,
        event: str = "user.created",
        url: str = "http://127.0.0.1:9/hook",
    ) -> None:
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.lock = threading.Lock()
        self.queries = 0
        self.db.execute(
            "CREATE TABLE subscriber (uuid TEXT PRIMARY KEY, event TEXT NOT NULL, url TEXT, "
            "owner TEXT, hmac_secret TEXT, hmac_digest TEXT, content_type TEXT, "
            "active INTEGER NOT NULL DEFAULT 1)"
        )
        self.db.execute("CREATE INDEX subscriber_event ON subscriber (event, active)")
        self.db.executemany(
            f"INSERT INTO subscriber ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            _rows(count, matching, event, url),
        )
        self.db.commit()

    def matching(
        self, event: str, sender: Any = None, context: Mapping[str, Any] | None = None
    ) -> list[Subscriber]:
        """One indexed query by candidate patterns."""
        patterns = candidate_patterns(event)
        marks = ",".join("?" * len(patterns))
        owner = sender_key(sender)
        with self.lock:
            self.queries += 1
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM subscriber WHERE active = 1 AND event IN ({marks}) "  # noqa: S608
                "AND (owner IS NULL OR owner = ?)",
                (*patterns, None if owner is None else str(owner)),
            ).fetchall()
        return [_subscriber(row) for row in rows]

    def close(self) -> None:
        """Close the in-memory database (as :meth:`PostgresSubscribers.close` drops its table)."""
        self.db.close()


class PostgresSubscribers:
    """Subscribers in a PostgreSQL table (dropped on close) with an index on ``event``."""

    def __init__(
        self,
        count: int,
        *,
        matching: int = 0,
        event: str = "user.created",
        url: str = "http://127.0.0.1:9/hook",
        dsn: str = POSTGRES_URL,
    ) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.table = f"bench_subscriber_{count}_{threading.get_ident() % 100000}"
        self.queries = 0
        self.lock = threading.Lock()
        self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
        self.conn.execute(
            f"CREATE TABLE {self.table} (uuid TEXT PRIMARY KEY, event TEXT NOT NULL, url TEXT, "
            "owner TEXT, hmac_secret TEXT, hmac_digest TEXT, content_type TEXT, "
            "active BOOLEAN NOT NULL DEFAULT TRUE)"
        )
        self.conn.execute(f"CREATE INDEX ON {self.table} (event, active)")
        with self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.table} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",  # noqa: S608
                _rows(count, matching, event, url),
            )
        # VACUUM now, so that autovacuum does not wake up for the new rows during the run.
        self.conn.execute(f"VACUUM ANALYZE {self.table}")
        # One prepared statement, planned once: otherwise PostgreSQL re-plans each call, and
        # planning (not the index lookup, ~20 us either way) grows with the table's stats.
        self.conn.execute("SET plan_cache_mode = force_generic_plan")
        self._query = (
            f"SELECT {_COLUMNS} FROM {self.table} WHERE active AND event = ANY(%s) "  # noqa: S608
            "AND (owner IS NULL OR owner = %s)"
        )

    def matching(
        self, event: str, sender: Any = None, context: Mapping[str, Any] | None = None
    ) -> list[Subscriber]:
        """One indexed query by candidate patterns."""
        owner = sender_key(sender)
        with self.lock:
            self.queries += 1
            rows = self.conn.execute(
                self._query,
                (list(candidate_patterns(event)), None if owner is None else str(owner)),
                prepare=True,
            ).fetchall()
        return [_subscriber(row) for row in rows]

    def close(self) -> None:
        """Drop the table and disconnect."""
        self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
        self.conn.close()
