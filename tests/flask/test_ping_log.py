"""Pings in the Flask app's delivery log: every test delivery is an attempt on record."""

from __future__ import annotations

from collections.abc import Callable

import flask

from thorn_core.ping import PING_EVENT, ping
from thorn_core.receiver import WebhookReceiver
from thorn_flask import get_state

from .app import store_subscription


class TestPingsAreLogged:
    """``flask thorn ping`` and ``ping()`` write the attempt to the SQLAlchemy delivery log."""

    def test_cli_ping(
        self, make_app: Callable[..., flask.Flask], receiver: WebhookReceiver
    ) -> None:
        """A delivered ping is one successful attempt of event thorn.ping, with its id."""
        app = make_app()
        row = store_subscription(app, receiver.url("/ping"), "user.*")
        result = app.test_cli_runner().invoke(args=["thorn", "ping", str(row.uuid)])
        assert result.exit_code == 0, result.output
        (webhook,) = receiver.received
        log = get_state(app).delivery_log
        assert log is not None
        (attempt,) = log.for_subscriber(str(row.uuid))
        assert attempt.event == PING_EVENT
        assert attempt.ok
        assert attempt.status_code == 200
        assert attempt.delivery_id == webhook.delivery_id

    def test_failed_ping_counts_in_the_streak(self, make_app: Callable[..., flask.Flask]) -> None:
        """A refused ping is logged with its reason and counts as a failure."""
        app = make_app({"THORN_RECIPIENT_VALIDATORS": None})
        row = store_subscription(app, "http://127.0.0.1:9/hook", "user.*")
        state = get_state(app)
        delivery = ping(state.core, row.to_subscriber())
        assert not delivery.ok
        assert state.delivery_log is not None
        (attempt,) = state.delivery_log.failed(str(row.uuid))
        assert attempt.event == PING_EVENT
        assert attempt.error == delivery.error
        assert state.delivery_log.streak(str(row.uuid)).count == 1
