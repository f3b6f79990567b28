"""Stored subscribers: the mixin on Flask-SQLAlchemy, one indexed query, 410 deactivation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import flask
import pytest
from sqlalchemy import event, inspect

import thorn_core
from thorn_core.receiver import WebhookReceiver
from thorn_flask import get_state

from .app import Subscription, db


@pytest.fixture
def statements(app: flask.Flask) -> Iterator[list[str]]:
    """The SQL statements the app's engine runs while the test runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


class TestMatching:
    """``Model.matching(event, user)`` is one indexed ``event IN (...)`` query."""

    def test_patterns_owners_and_active(
        self, app: flask.Flask, subscribe: Callable[..., Subscription]
    ) -> None:
        """Exact names, prefixes, suffixes and * match; others' and inactive ones do not."""
        for pattern in ("user.created", "user.*", "*.created", "*", "user.deleted", "order.*"):
            subscribe("https://example.com/", pattern)
        subscribe("https://example.com/mine", "user.created", user_id="7")
        subscribe("https://example.com/theirs", "user.created", user_id="8")
        subscribe("https://example.com/off", "user.created", active=False)
        with app.app_context():
            anonymous = db.session.scalars(Subscription.matching("user.created")).all()
            owned = db.session.scalars(Subscription.matching("user.created", 7)).all()
        assert sorted(s.event for s in anonymous) == ["*", "*.created", "user.*", "user.created"]
        assert {s.url for s in owned} - {s.url for s in anonymous} == {"https://example.com/mine"}

    def test_one_query_on_an_indexed_column(
        self,
        app: flask.Flask,
        subscribe: Callable[..., Subscription],
        statements: list[str],
    ) -> None:
        """Finding subscribers for an event runs one SELECT with IN on the indexed column."""
        subscribe("https://example.com/", "a.b.*")
        source = get_state(app).source
        assert source is not None
        statements.clear()
        found = source.matching("a.b.c.d")
        assert [s.event for s in found] == ["a.b.*"]
        (select,) = statements
        assert " IN " in select
        with app.app_context():
            indexes = inspect(db.engine).get_indexes("thorn_subscriber")
        assert any(index["column_names"] == ["event"] for index in indexes)

    def test_rows_become_core_subscribers(
        self, app: flask.Flask, subscribe: Callable[..., Subscription]
    ) -> None:
        """A row gets a generated secret and the defaults, and converts to the core value."""
        row = subscribe("https://example.com/", "user.*", user_id="3")
        subscriber = row.to_subscriber()
        assert subscriber.hmac_secret.startswith("whsec_")
        assert subscriber.uuid == row.uuid
        assert (subscriber.user, subscriber.hmac_digest, subscriber.content_type) == (
            "3",
            "sha256",
            "application/json",
        )


class TestGone:
    """A 410 Gone answer deactivates the stored subscription."""

    def test_410_deactivates(
        self,
        app: flask.Flask,
        subscribe: Callable[..., Subscription],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """After the receiver answers 410, the row is inactive and receives no more."""
        gone = make_receiver(lambda _request: (410, b"gone"))
        row = subscribe(gone.url("/old"), "*")
        with app.app_context():
            thorn_core.Event("user.created").send({})
            thorn_core.Event("user.created").send({})
            assert db.session.get(Subscription, row.id).active is False
        assert len(gone.received) == 1
