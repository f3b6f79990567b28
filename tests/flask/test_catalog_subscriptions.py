"""Subscriptions against the catalog in Flask: payload filters and version pins through the
API and ``flask thorn add``, applied to real deliveries; strict patterns. SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask
import pytest
from flask.testing import FlaskClient

from thorn_core import Event
from thorn_core.receiver import WebhookReceiver
from thorn_flask import create_blueprint, get_state

from .app import Subscription, db

HOOK = "http://127.0.0.1:8000/hooks"
LARGE = {"amount": {"$gte": 100}}
ORDER_SCHEMA = {"type": "object", "properties": {"amount": {"type": "number"}}}
USER = {"X-User": "ada"}


def declare_orders(app: flask.Flask) -> None:
    """Declare ``order.placed`` versions 1 and 2 and ``order.refunded`` in the app's catalog."""
    core = get_state(app).core
    core.event_type("order.placed", schema=ORDER_SCHEMA, version="1")
    core.event_type("order.placed", schema=ORDER_SCHEMA, version="2")
    core.event_type("order.refunded", schema=ORDER_SCHEMA)


def api(app: flask.Flask) -> FlaskClient:
    """A test client of ``app`` with the API at ``/hooks``."""
    app.config["SERVER_NAME"] = None
    app.register_blueprint(create_blueprint(), url_prefix="/hooks")
    return app.test_client()


def rows(app: flask.Flask) -> list[Subscription]:
    """Every stored subscription."""
    with app.app_context():
        return list(db.session.scalars(db.select(Subscription).order_by(Subscription.id)))


@pytest.fixture
def client(app: flask.Flask) -> FlaskClient:
    """The API of an app whose catalog declares the order events."""
    declare_orders(app)
    return api(app)


@pytest.fixture
def strict_app(make_app: Callable[..., flask.Flask], database: dict[str, Any]) -> flask.Flask:
    """An app with THORN_EVENT_TYPES_STRICT and the order events declared."""
    app = make_app({**database, "THORN_EVENT_TYPES_STRICT": True})
    declare_orders(app)
    return app


class TestFilterThroughTheAPI:
    """The blueprint takes, checks, stores and shows a subscription's payload filter."""

    def test_create_with_a_filter(self, app: flask.Flask, client: FlaskClient) -> None:
        """A valid filter is stored and shown back."""
        answer = client.post(
            "/hooks/", json={"event": "order.*", "url": HOOK, "filter": LARGE}, headers=USER
        )
        assert answer.status_code == 201, answer.json
        assert answer.json["filter"] == LARGE
        (row,) = rows(app)
        assert row.filter == LARGE
        assert client.get(f"/hooks/{row.uuid}", headers=USER).json["filter"] == LARGE

    def test_bad_operator_is_a_400_naming_its_path(
        self, app: flask.Flask, client: FlaskClient
    ) -> None:
        """An unknown operator is refused with its JSON pointer; nothing is stored."""
        answer = client.post(
            "/hooks/",
            json={"event": "order.*", "url": HOOK, "filter": {"amount": {"$gtee": 1}}},
            headers=USER,
        )
        assert answer.status_code == 400
        (message,) = answer.json["filter"]
        assert message.startswith("Invalid filter at /amount/$gtee: unknown operator '$gtee'")
        assert rows(app) == []

    def test_filter_must_be_an_object(self, client: FlaskClient) -> None:
        """A list is refused with the same message as the Django API's."""
        answer = client.post(
            "/hooks/", json={"event": "order.*", "url": HOOK, "filter": [1]}, headers=USER
        )
        assert answer.status_code == 400
        assert answer.json["filter"] == ["A filter is a JSON object or null, not array."]

    def test_patch_removes_the_filter(self, app: flask.Flask, client: FlaskClient) -> None:
        """PATCH with null takes the filter away (SQL NULL)."""
        created = client.post(
            "/hooks/", json={"event": "order.*", "url": HOOK, "filter": LARGE}, headers=USER
        ).json
        answer = client.patch(f"/hooks/{created['uuid']}", json={"filter": None}, headers=USER)
        assert answer.status_code == 200
        assert answer.json["filter"] is None
        with app.app_context():
            nulls = db.session.scalar(
                db.select(db.func.count()).where(Subscription.filter.is_(None))
            )
        assert nulls == 1


class TestVersionPins:
    """A pin must name a declared version of a matching type."""

    def test_pin_a_declared_version(self, app: flask.Flask, client: FlaskClient) -> None:
        """A declared version is accepted and stored."""
        answer = client.post(
            "/hooks/", json={"event": "order.placed", "url": HOOK, "version": "2"}, headers=USER
        )
        assert answer.status_code == 201, answer.json
        assert [row.version for row in rows(app)] == ["2"]

    def test_unknown_version(self, client: FlaskClient) -> None:
        """An undeclared version is a 400 listing the declared ones."""
        answer = client.post(
            "/hooks/", json={"event": "order.placed", "url": HOOK, "version": "3"}, headers=USER
        )
        assert answer.status_code == 400
        assert answer.json["version"] == [
            "'3' is not a declared version of the types 'order.placed' matches: "
            "order.placed 1, order.placed 2"
        ]

    def test_patch_of_the_version_alone(self, client: FlaskClient) -> None:
        """Changing only the pin is checked against the stored pattern."""
        created = client.post(
            "/hooks/", json={"event": "order.refunded", "url": HOOK}, headers=USER
        ).json
        refused = client.patch(f"/hooks/{created['uuid']}", json={"version": "2"}, headers=USER)
        assert refused.status_code == 400
        assert "order.refunded 1" in refused.json["version"][0]


class TestStrictPatterns:
    """THORN_EVENT_TYPES_STRICT refuses patterns that match no declared type."""

    def test_unknown_pattern_is_a_400_listing_the_types(self, strict_app: flask.Flask) -> None:
        """The message lists every declared event type (the app's model events too)."""
        answer = api(strict_app).post(
            "/hooks/", json={"event": "user.*", "url": HOOK}, headers=USER
        )
        assert answer.status_code == 400
        known = get_state(strict_app).core.catalog.names()  # the app's model events too
        assert {"order.placed", "order.refunded"} <= set(known)
        assert answer.json["event"] == [
            f"'user.*' matches no declared event type; known types: {', '.join(known)}"
        ]

    def test_matching_pattern_is_accepted(self, strict_app: flask.Flask) -> None:
        """A pattern that matches a declared type is stored."""
        answer = api(strict_app).post(
            "/hooks/", json={"event": "*.refunded", "url": HOOK}, headers=USER
        )
        assert answer.status_code == 201, answer.json

    def test_command_line_refuses_it_too(self, strict_app: flask.Flask) -> None:
        """``flask thorn add`` gives the same message and stores nothing."""
        result = strict_app.test_cli_runner().invoke(
            args=["thorn", "add", HOOK, "--event", "user.created"]
        )
        assert result.exit_code != 0
        assert "matches no declared event type; known types: " in result.output
        assert "order.placed, order.refunded" in result.output
        assert rows(strict_app) == []


class TestCommandLine:
    """``flask thorn add --filter`` and ``--event-version``."""

    def test_add_with_filter_and_pin(self, app: flask.Flask) -> None:
        """Both are checked and stored."""
        declare_orders(app)
        result = app.test_cli_runner().invoke(
            args=[
                "thorn", "add", HOOK, "--event", "order.placed",
                "--filter", '{"amount": {"$gte": 100}}', "--event-version", "1",
            ]
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        (row,) = rows(app)
        assert (row.filter, row.version) == (LARGE, "1")

    @pytest.mark.parametrize(
        ("given", "message"),
        [
            ('{"amount": {"$gtee": 1}}', "Invalid filter at /amount/$gtee"),
            ("{amount: 1}", "not valid JSON"),
            ("[1]", "A filter is a JSON object or null, not array."),
        ],
    )
    def test_bad_filter(self, app: flask.Flask, given: str, message: str) -> None:
        """A bad filter is a usage error naming the problem; nothing is stored."""
        result = app.test_cli_runner().invoke(
            args=["thorn", "add", HOOK, "--event", "order.*", "--filter", given]
        )
        assert result.exit_code != 0
        assert message in result.output
        assert rows(app) == []


class TestFilteredDelivery:
    """Stored filters and pins decide who receives a send."""

    def test_only_the_large_orders(
        self,
        app: flask.Flask,
        subscribe: Callable[..., Subscription],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """{"amount": {"$gte": 100}} receives the large orders; an unfiltered one every order."""
        large, every = make_receiver(), make_receiver()
        subscribe(large.url("/large"), "order.placed", filter=LARGE)
        subscribe(every.url("/every"), "order.*")

        with app.app_context():
            placed = Event("order.placed", app=get_state(app).core)
            for number, amount in enumerate([5, 150, 100, 99]):
                assert placed.send({"id": number, "amount": amount}).ok

        every.wait_for(4, 5.0)
        assert [r.json()["id"] for r in large.wait_for(2, 5.0)] == [1, 2]
        assert [r.json()["id"] for r in every.received] == [0, 1, 2, 3]

    def test_pinned_to_an_older_version(
        self,
        app: flask.Flask,
        subscribe: Callable[..., Subscription],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """Sends are of the newest declared version: a pin on version 1 receives none."""
        declare_orders(app)
        old, new = make_receiver(), make_receiver()
        subscribe(old.url(), "order.placed", version="1")
        subscribe(new.url(), "order.placed", version="2")

        with app.app_context():
            assert Event("order.placed", app=get_state(app).core).send({"amount": 1}).ok

        assert len(new.wait_for(1, 5.0)) == 1
        assert old.received == []
