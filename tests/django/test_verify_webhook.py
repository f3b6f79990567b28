"""``@verify_webhook``: receiving views run only for correctly signed, fresh requests."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client

from thorn_core import Thorn
from thorn_core.signing import hook_hmac, standard_webhooks_headers
from thorn_core.testing import loopback_validators

from .testapp.views import OLD_SECRET, SECRET


def signed(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Headers a Thorn delivery carries for ``body`` (as ``HTTP_*`` keys for the test client)."""
    headers = {
        **standard_webhooks_headers(secret, "msg_1", int(timestamp or time.time()), body),
        "hook-hmac": hook_hmac("sha256", secret, body),
        "hook-event": "article.created",
    }
    return {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}


BODY = json.dumps({"event": "article.created", "data": {"id": 1}}).encode()


def post(path: str, headers: dict[str, str], body: bytes = BODY) -> Any:
    """POST ``body`` as JSON with CSRF checks on, as a real receiver would get it."""
    client = Client(enforce_csrf_checks=True)
    return client.post(path, body, content_type="application/json", **headers)


class TestVerifyWebhook:
    def test_valid_request_reaches_the_view(self) -> None:
        """A signed request reaches the view, which sees the parsed payload."""
        answer = post("/receive/", signed(BODY))
        assert answer.status_code == 200
        assert answer.json() == {
            "event": "article.created",
            "payload": {"event": "article.created", "data": {"id": 1}},
        }

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            signed(BODY, secret="wrong-secret"),
            signed(BODY, timestamp=int(time.time()) - 3600),
            signed(b"another body"),
        ],
        ids=["unsigned", "wrong secret", "stale timestamp", "tampered body"],
    )
    def test_refused_with_401(self, headers: dict[str, str]) -> None:
        """Missing, wrong, stale or mismatched signatures answer 401 and the view never runs."""
        answer = post("/receive/", headers)
        assert answer.status_code == 401
        assert answer.content.startswith(b"Invalid webhook signature: ")

    def test_unknown_sender_is_refused(self) -> None:
        """A secret lookup that raises answers 401, not 500."""
        assert post("/receive-unknown/", signed(BODY)).status_code == 401

    def test_rotating_secrets(self) -> None:
        """A callable may return several secrets: either one verifies."""
        assert post("/receive-rotating/", signed(BODY, secret=OLD_SECRET)).status_code == 200
        assert post("/receive-rotating/", signed(BODY)).status_code == 200

    def test_a_thorn_delivery_verifies(self, live_server: Any) -> None:
        """A webhook delivered by Thorn to the Django view over HTTP passes verification."""
        url = live_server.url.replace("localhost", "127.0.0.1") + "/receive/"
        app = Thorn(
            {
                "THORN_RECIPIENT_VALIDATORS": loopback_validators(),
                "THORN_SUBSCRIBERS": {"article.*": {"url": url, "hmac_secret": SECRET}},
            },
            set_as_current=False,
        )
        with app:
            result = app.event("article.created").send({"id": 7})
        (delivery,) = result.deliveries
        assert delivery.ok, delivery.error
        assert json.loads(delivery.response_body)["payload"] == {"id": 7}
