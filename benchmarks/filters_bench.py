"""Payload filters in the fan-out: resolving 10,000 stored subscriptions, 1 % with filters,
against the same 10,000 without any (``python -m benchmarks.filters_bench [--quick]``).

The subscriptions are rows of the Flask adapter's model, read by its subscriber source
(one indexed ``event IN (...)`` query); every row matches the event, so each resolution
builds 10,000 subscribers and judges the filtered ones. The figure is the median time of
``resolve_subscribers`` (the step filters join), the ratio filtered / unfiltered (target
at most 1.2) and the queries per resolution (target: one). Runs on SQLite, and on
PostgreSQL when it is reachable. Nothing here is a test: it prints.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from typing import Any

import sqlalchemy
from sqlalchemy import event as sa_event
from sqlalchemy import insert
from sqlalchemy.orm import sessionmaker

from thorn_core import Subscriber as CoreSubscriber
from thorn_core import Thorn
from thorn_core.fanout import resolve_subscribers
from thorn_core.message import EventMessage
from thorn_core.targeting import select_subscribers
from thorn_flask.models import Subscriber
from thorn_flask.store import StoredSubscribers

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
EVENT = "order.placed"
TOTAL = 10_000
#: One subscription in a hundred has a filter.
FILTERED_EVERY = 100
TARGET_RATIO = 1.2


def _rows(filtered: bool) -> list[dict[str, Any]]:
    """10,000 subscriptions to EVENT; with ``filtered``, every 100th has its own filter."""
    rows = []
    for i in range(TOTAL):
        spec = (
            {"amount": {"$gte": i}, "currency": {"$in": ["EUR", "NOK"]}}
            if filtered and i % FILTERED_EVERY == 0
            else None
        )
        rows.append(
            {
                "uuid": uuid.uuid4(),
                "event": EVENT,
                "url": f"https://hooks{i % 50}.example.com/in",
                "hmac_secret": f"secret-number-{i:06d}-of-the-bench",
                "hmac_digest": "sha256",
                "content_type": "application/json",
                "active": True,
                "filter": spec,
            }
        )
    return rows


class Setup:
    """A database holding the 10,000 subscriptions, an app reading them, a query counter."""

    def __init__(self, url: str, filtered: bool) -> None:
        # Each setup has a schema of its own (SQLite: a database of its own), so that both
        # stay loaded and the runs can alternate.
        schema = "thorn_bench_filtered" if filtered else "thorn_bench_plain"
        self.base = sqlalchemy.create_engine(url)
        self.schema = None if url.startswith("sqlite") else schema
        if self.schema is not None:
            with self.base.begin() as connection:
                connection.execute(sqlalchemy.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
                connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
        self.engine = self.base.execution_options(schema_translate_map={None: self.schema})
        Subscriber.__table__.create(self.engine)  # type: ignore[attr-defined]
        with self.engine.begin() as connection:
            connection.execute(insert(Subscriber), _rows(filtered))
        self.queries = 0
        sa_event.listen(self.base, "before_cursor_execute", self._count)
        self.app = Thorn({"THORN_DISPATCHER": "disabled"}, set_as_current=False)
        self.app.add_subscriber_source(StoredSubscribers(Subscriber, sessionmaker(self.engine)))

    def _count(self, *_args: Any) -> None:
        self.queries += 1

    def close(self) -> None:
        if self.schema is not None:
            with self.base.begin() as connection:
                connection.execute(sqlalchemy.text(f"DROP SCHEMA {self.schema} CASCADE"))
        self.app.close()
        self.base.dispose()


def _message(amount: int) -> EventMessage:
    return EventMessage(
        event=EVENT,
        data={"id": amount, "amount": amount, "currency": "EUR", "lines": [{"sku": "A-1"}]},
        timeout=5.0,
        retry=False,
        retry_max=0,
        retry_delay=0.0,
    )


def measure(url: str, repeat: int) -> dict[str, tuple[float, float, int]]:
    """Per setup (``plain``, ``filtered``): median seconds per resolution, queries per
    resolution, subscribers found. The two setups alternate, so drift hits both alike."""
    setups = {"plain": Setup(url, filtered=False), "filtered": Setup(url, filtered=True)}
    try:
        times: dict[str, list[float]] = {name: [] for name in setups}
        found: dict[str, int] = {}
        for setup in setups.values():
            resolve_subscribers(setup.app, _message(0))  # warm: connection, compiled filters
            setup.queries = 0
        for n in range(repeat):
            # The amount keeps half of the filtered subscribers (thresholds 0..9900).
            message = _message(5000 + n)
            for name, setup in setups.items():
                start = time.perf_counter()
                found[name] = len(resolve_subscribers(setup.app, message))
                times[name].append(time.perf_counter() - start)
        return {
            name: (statistics.median(times[name]), setup.queries / repeat, found[name])
            for name, setup in setups.items()
        }
    finally:
        for setup in setups.values():
            setup.close()


def selection_cost(repeat: int) -> tuple[float, float]:
    """Median seconds of the filter step alone (``select_subscribers`` over 10,000 values
    already built), without filters and with 1 %: what filters add, without the database."""
    subscribers = {
        filtered: [
            CoreSubscriber(url=row["url"], event=EVENT, uuid=row["uuid"], filter=row["filter"])
            for row in _rows(filtered)
        ]
        for filtered in (False, True)
    }
    app = Thorn({"THORN_DISPATCHER": "disabled"}, set_as_current=False)
    result = []
    for filtered in (False, True):
        times = []
        for n in range(repeat):
            start = time.perf_counter()
            select_subscribers(app, _message(5000 + n), subscribers[filtered])
            times.append(time.perf_counter() - start)
        result.append(statistics.median(times))
    app.close()
    return result[0], result[1]


def _postgres_reachable() -> bool:
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Print the figures for each database; exit 1 when a run made more than one query."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    options = parser.parse_args(argv)
    repeat = 5 if options.quick else 25
    databases = {"sqlite": "sqlite://"}
    if _postgres_reachable():
        databases["postgresql"] = POSTGRES_URL
    else:
        print("PostgreSQL unreachable: SQLite only")
    status = 0
    print(f"resolve_subscribers, {TOTAL} matching subscriptions, medians of {repeat}")
    for name, url in databases.items():
        figures = measure(url, repeat)
        plain, plain_queries, plain_found = figures["plain"]
        mixed, mixed_queries, mixed_found = figures["filtered"]
        ratio = mixed / plain
        print(
            f"{name:>10}: no filters {plain * 1000:8.2f} ms ({plain_found} subscribers, "
            f"{plain_queries:g} query) | 1 % filtered {mixed * 1000:8.2f} ms "
            f"({mixed_found} subscribers, {mixed_queries:g} query) | ratio {ratio:.3f} "
            f"(target <= {TARGET_RATIO})"
        )
        expected = TOTAL - TOTAL // FILTERED_EVERY // 2
        if plain_queries != 1 or mixed_queries != 1 or plain_found != TOTAL:
            print(f"{name}: expected one query and {TOTAL} subscribers", file=sys.stderr)
            status = 1
        if not expected - 2 <= mixed_found <= expected + 2:
            print(f"{name}: expected about {expected} subscribers with filters", file=sys.stderr)
            status = 1
    bare, judged = selection_cost(repeat * 4)
    print(
        f"filter step alone over {TOTAL} subscribers: none {bare * 1e6:.0f} us, "
        f"1 % filtered {judged * 1e6:.0f} us (+{(judged - bare) * 1e6:.0f} us per send)"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
