"""``flask thorn``: list, add, remove and ping subscribers through Flask's CliRunner."""

from __future__ import annotations

import re

import flask

from thorn_core.receiver import WebhookReceiver

from .app import Subscription, db


def add(app: flask.Flask, *args: str) -> str:
    """Run ``flask thorn add`` and return the new subscriber's id."""
    result = app.test_cli_runner().invoke(args=["thorn", "add", *args])
    assert result.exit_code == 0, result.output
    found = re.search(r"Added subscriber (\S+):", result.output)
    assert found is not None
    return found.group(1)


class TestCommands:
    """The commands manage stored subscribers and send test events."""

    def test_add_list_remove(self, app: flask.Flask) -> None:
        """A subscriber added from the command line is listed, then removed."""
        runner = app.test_cli_runner()
        key = add(app, "http://127.0.0.1:8000/hook", "--event", "user.*", "--user", "5")
        listed = runner.invoke(args=["thorn", "list"]).output
        assert f"{key}  user.* http://127.0.0.1:8000/hook user=5" in listed.replace(
            "  http", " http"
        )
        assert (
            key
            in runner.invoke(
                args=["thorn", "list", "--event", "user.created", "--user", "5"]
            ).output
        )
        removed = runner.invoke(args=["thorn", "remove", key])
        assert removed.exit_code == 0
        with app.app_context():
            assert db.session.query(Subscription).count() == 0

    def test_add_refuses_invalid_input(self, app: flask.Flask) -> None:
        """The same per-field messages as the API; nothing is stored."""
        result = app.test_cli_runner().invoke(
            args=["thorn", "add", "http://10.0.0.1/", "--event", "a.*.b"]
        )
        assert result.exit_code != 0
        assert "event: pattern 'a.*.b' has a wildcard in a middle segment" in result.output
        assert "url:" in result.output

    def test_ping_delivers_a_signed_test_event(
        self, app: flask.Flask, receiver: WebhookReceiver
    ) -> None:
        """``flask thorn ping`` delivers thorn.ping to that subscriber only."""
        key = add(app, receiver.url("/hook"), "--event", "user.*")
        result = app.test_cli_runner().invoke(args=["thorn", "ping", key])
        assert result.exit_code == 0, result.output
        assert "HTTP 200" in result.output
        (webhook,) = receiver.received
        assert webhook.event == "thorn.ping"
        with app.app_context():
            secret = db.session.query(Subscription).one().hmac_secret
        assert webhook.standard_webhook_valid(secret)

    def test_unknown_subscriber(self, app: flask.Flask) -> None:
        """Removing an unknown id fails with a message."""
        result = app.test_cli_runner().invoke(
            args=["thorn", "remove", "00000000-0000-0000-0000-000000000000"]
        )
        assert result.exit_code == 1
        assert "No subscriber" in result.output
