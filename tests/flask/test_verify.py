"""``verify_webhook``: receiving views accept only webhooks signed with their secret."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask
import pytest

import thorn_core
from thorn_core.receiver import ReceivedWebhook, WebhookReceiver
from thorn_core.verification import VerifiedWebhook
from thorn_flask import verify_webhook

from .app import Subscription


@pytest.fixture
def delivered(
    app: flask.Flask, subscribe: Callable[..., Subscription], receiver: WebhookReceiver
) -> tuple[ReceivedWebhook, str]:
    """A real signed webhook as it arrived over HTTP, and its subscription's secret."""
    row = subscribe(receiver.url("/hooks"), "order.paid")
    with app.app_context():
        thorn_core.Event("order.paid").send({"order": 7})
    (webhook,) = receiver.received
    return webhook, row.hmac_secret


def receiving_app(secret: Any) -> flask.Flask:
    """A receiver's Flask app with one verified view."""
    app = flask.Flask("receiver")

    @app.post("/hooks")
    @verify_webhook(secret=secret)
    def hooks(webhook: VerifiedWebhook) -> dict[str, Any]:
        return {"event": webhook.event, "payload": webhook.payload}

    return app


def replay(app: flask.Flask, webhook: ReceivedWebhook, body: bytes | None = None) -> Any:
    """POST a received webhook's headers and body to ``app``."""
    headers = {k: v for k, v in webhook.headers.items() if k not in ("host", "content-length")}
    return app.test_client().post("/hooks", data=body or webhook.body, headers=headers)


class TestVerifyWebhook:
    """Signed requests reach the view with the webhook; others get 401."""

    def test_valid_webhook_reaches_the_view(self, delivered: tuple[ReceivedWebhook, str]) -> None:
        """The view gets the verified event and payload."""
        webhook, secret = delivered
        response = replay(receiving_app(secret), webhook)
        assert response.status_code == 200
        assert response.json == {"event": "order.paid", "payload": {"order": 7}}

    def test_wrong_secret_or_tampered_body_is_refused(
        self, delivered: tuple[ReceivedWebhook, str]
    ) -> None:
        """A different secret, or a changed body, answers 401 with a short message."""
        webhook, secret = delivered
        refused = replay(receiving_app("whsec_" + "A" * 32), webhook)
        assert (refused.status_code, refused.text) == (401, "Invalid webhook signature.")
        assert replay(receiving_app(secret), webhook, b'{"order": 8}').status_code == 401

    def test_rotation_and_callable_secrets(self, delivered: tuple[ReceivedWebhook, str]) -> None:
        """A list of secrets (rotation) or a callable taking the request both work."""
        webhook, secret = delivered
        assert replay(receiving_app(["whsec_" + "B" * 32, secret]), webhook).status_code == 200
        assert replay(receiving_app(lambda request: [secret]), webhook).status_code == 200

    def test_unknown_sender_is_refused_not_an_error(
        self, delivered: tuple[ReceivedWebhook, str]
    ) -> None:
        """A secret lookup that raises or finds nothing answers 401, not 500."""
        webhook, _ = delivered

        def unknown(request: Any) -> str:
            raise KeyError(request.headers.get("Hook-Subscription"))

        assert replay(receiving_app(unknown), webhook).status_code == 401
        assert replay(receiving_app(lambda request: None), webhook).status_code == 401
