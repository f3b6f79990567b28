"""ed25519 in Flask: ``THORN_SIGNATURE`` for new subscriptions, the API's ``public_key``, and
``verify_webhook`` with a ``whpk_`` public key, over real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import flask
import pytest

import thorn_core
from thorn_core import ImproperlyConfigured
from thorn_core.ed25519 import generate_signing_key, public_key
from thorn_core.receiver import WebhookReceiver

from .app import Subscription, store_subscription
from .test_api import as_user, create, stored, with_api
from .test_verify import receiving_app, replay


@pytest.fixture
def ed25519_app(make_app: Callable[..., flask.Flask], database: dict[str, Any]) -> flask.Flask:
    """A Flask app whose new subscribers get ed25519 signing keys."""
    return make_app({**database, "THORN_SIGNATURE": "ed25519"})


class TestSiteWide:
    """``THORN_SIGNATURE = "ed25519"``: new subscriptions sign ``v1a`` only."""

    def test_api_shows_the_public_key(
        self, ed25519_app: flask.Flask, receiver: WebhookReceiver
    ) -> None:
        """A new subscription gets a whsk_ key; the API shows its public key, always, and
        the secret only in the answer that created it."""
        client = with_api(ed25519_app)
        created = create(client, "ada", url=receiver.url("/hooks"))
        row = stored(ed25519_app, created["uuid"])
        read = client.get(f"/hooks/{created['uuid']}", headers=as_user("ada")).json

        assert row.hmac_secret.startswith("whsk_")
        assert created["hmac_secret"] == row.hmac_secret
        assert created["public_key"] == public_key(row.hmac_secret)
        assert read["public_key"] == created["public_key"]
        assert "hmac_secret" not in read

    def test_delivery_verifies_with_the_public_key(
        self, ed25519_app: flask.Flask, receiver: WebhookReceiver
    ) -> None:
        """A real delivery carries v1a and no Hook-HMAC; the receiver's decorator accepts it
        with the public key and refuses it with another key or a changed body."""
        row = store_subscription(ed25519_app, receiver.url("/hooks"), "order.paid")
        public = public_key(row.hmac_secret)
        assert public is not None
        with ed25519_app.app_context():
            result = thorn_core.Event("order.paid").send({"order": 7})
        assert [d.ok for d in result.deliveries] == [True]
        (webhook,) = receiver.wait_for(1)

        assert webhook.headers["webhook-signature"].startswith("v1a,")
        assert "hook-hmac" not in webhook.headers
        accepted = replay(receiving_app(public), webhook)
        assert accepted.status_code == 200
        assert accepted.json == {"event": "order.paid", "payload": {"order": 7}}
        other = public_key(generate_signing_key())
        assert replay(receiving_app(other), webhook).status_code == 401
        assert replay(receiving_app(public), webhook, b'{"order": 8}').status_code == 401

    def test_unknown_scheme_fails_at_start_up(self, make_app: Callable[..., flask.Flask]) -> None:
        """An unknown THORN_SIGNATURE stops ``Thorn(app)`` with the setting's name."""
        with pytest.raises(ImproperlyConfigured, match="THORN_SIGNATURE"):
            make_app({"THORN_SIGNATURE": "rsa"})


class TestPerSubscriber:
    """Without the setting, a subscription given a whsk_ key signs with ed25519 alone."""

    def test_chosen_key_and_hmac_side_by_side(self, app: flask.Flask) -> None:
        """One subscription with a chosen whsk_ key shows its public key; an HMAC one null."""
        client = with_api(app)
        chosen = generate_signing_key()
        ed = create(client, "ada", hmac_secret=chosen)
        hmac = create(client, "ada")

        assert ed["public_key"] == public_key(chosen)
        assert hmac["hmac_secret"].startswith("whsec_")
        assert hmac["public_key"] is None
        listed = client.get("/hooks/", headers=as_user("ada")).json
        rows = listed["results"] if isinstance(listed, dict) else listed
        assert {r["uuid"]: r["public_key"] for r in rows} == {
            ed["uuid"]: public_key(chosen),
            hmac["uuid"]: None,
        }

    @pytest.mark.parametrize(
        ("secret", "words"),
        [
            ("whsk_" + base64.b64encode(b"k" * 31).decode(), "32 bytes"),
            ("whpk_" + base64.b64encode(b"k" * 32).decode(), "verifies"),
        ],
    )
    def test_bad_key_is_a_400(self, app: flask.Flask, secret: str, words: str) -> None:
        """A malformed whsk_ key, or a whpk_ key, is refused with the reason."""
        client = with_api(app)
        response = client.post(
            "/hooks/",
            json={"event": "a.*", "url": "http://127.0.0.1:8000/hooks", "hmac_secret": secret},
            headers=as_user("ada"),
        )

        assert response.status_code == 400
        assert words in " ".join(response.json["hmac_secret"])
        with app.app_context():
            assert Subscription.query.count() == 0


#: ``flask thorn add`` of one subscription.
ADD = ["thorn", "add", "http://127.0.0.1:8000/hooks", "--event", "a.*"]


class TestCommands:
    """``flask thorn add`` prints the public key of an ed25519 subscriber, once."""

    def test_add_prints_the_public_key(self, ed25519_app: flask.Flask, app: flask.Flask) -> None:
        """The new row's public key follows its secret; an HMAC app's row prints none."""
        ed = ed25519_app.test_cli_runner().invoke(args=ADD)
        hmac = app.test_cli_runner().invoke(args=ADD)
        assert ed.exit_code == 0, ed.output
        assert hmac.exit_code == 0, hmac.output
        secret = ed.output.split("Secret (shown once): ", 1)[1].split()[0]

        assert secret.startswith("whsk_")
        assert f"Public key (for its receiver): {public_key(secret)}" in ed.output
        assert "Public key" not in hmac.output
