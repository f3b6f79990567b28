"""ed25519 in Django: ``@verify_webhook`` with a ``whpk_`` public key, ``THORN_SIGNATURE`` for
new subscriptions, and the API's read-only ``public_key``."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.test import Client, override_settings
from rest_framework.test import APIClient

from thorn_core import Thorn
from thorn_core.ed25519 import generate_signing_key, public_key
from thorn_core.signing import standard_webhooks_headers
from thorn_core.testing import loopback_validators
from thorn_django.models import Subscriber

from .test_checks import check_output
from .testapp.views import PUBLIC_KEY, SECRET, SIGNING_KEY

pytestmark = pytest.mark.django_db

LIST = "/hooks/"
HOOK = "https://example.com/hook"
BODY = json.dumps({"event": "article.created", "data": {"id": 1}}).encode()


def post(body: bytes, headers: dict[str, str]) -> Any:
    """POST ``body`` to the ed25519 receiver with CSRF checks on, as a real request."""
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    client = Client(enforce_csrf_checks=True)
    return client.post("/receive-ed25519/", body, content_type="application/json", **meta)


def signed(body: bytes, secret: str = SIGNING_KEY) -> dict[str, str]:
    """The Standard Webhooks headers Thorn sends for ``body`` signed with ``secret``."""
    return standard_webhooks_headers(secret, "msg_1", int(time.time()), body)


class TestVerifyWebhook:
    """``@verify_webhook(secret=PUBLIC_KEY)`` verifies ``v1a`` signatures."""

    def test_key_pair_matches(self) -> None:
        """The test app's public key is its signing key's, as cryptography derives it."""
        seed = base64.b64decode(SIGNING_KEY[len("whsk_") :])
        raw = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        assert base64.b64encode(raw).decode() == PUBLIC_KEY[len("whpk_") :]

    def test_a_thorn_delivery_verifies(self, live_server: Any) -> None:
        """A webhook Thorn delivers over HTTP to the Django view passes with the public key."""
        url = live_server.url.replace("localhost", "127.0.0.1") + "/receive-ed25519/"
        subscribers = {"article.*": {"url": url, "hmac_secret": SIGNING_KEY}}
        settings = {
            "THORN_RECIPIENT_VALIDATORS": loopback_validators(),
            "THORN_SUBSCRIBERS": subscribers,
        }
        with Thorn(settings, set_as_current=False) as app:
            (delivery,) = app.event("article.created").send({"id": 7}).deliveries

        assert delivery.ok, delivery.error
        assert json.loads(delivery.response_body)["payload"] == {"id": 7}
        assert "Hook-HMAC" not in delivery.request.headers

    @pytest.mark.parametrize(
        "headers",
        [
            signed(BODY, generate_signing_key()),
            signed(BODY, SECRET),
            signed(b"another body"),
            {},
        ],
        ids=["other key", "hmac secret", "tampered body", "unsigned"],
    )
    def test_refused_with_401(self, headers: dict[str, str]) -> None:
        """Another key, an HMAC signature, a changed body or none: 401, the view never runs."""
        answer = post(BODY, headers)

        assert answer.status_code == 401
        assert answer.content.startswith(b"Invalid webhook signature: ")

    def test_valid_request(self) -> None:
        """A v1a-signed request reaches the view with its parsed payload."""
        answer = post(BODY, signed(BODY))

        assert answer.status_code == 200
        assert answer.json()["payload"] == {"event": "article.created", "data": {"id": 1}}


@pytest.fixture
def client(make_user: Callable[[str], Any]) -> APIClient:
    """An API client logged in as alice."""
    api = APIClient()
    api.force_authenticate(make_user("alice"))
    return api


class TestApi:
    """``public_key`` is shown with every subscription (null for HMAC), never the secret."""

    def test_site_wide_ed25519(self, client: APIClient) -> None:
        """With THORN_SIGNATURE="ed25519" a new subscription gets a whsk_ key; its public
        key is in the answer and in every later read, the secret only in the first."""
        with override_settings(THORN_SIGNATURE="ed25519"):
            created = client.post(LIST, {"event": "article.*", "url": HOOK}, format="json")
        assert created.status_code == 201, created.data
        body = created.json()
        row = Subscriber.objects.get(uuid=body["uuid"])

        assert row.hmac_secret.startswith("whsk_")
        assert body["hmac_secret"] == row.hmac_secret
        assert body["public_key"] == public_key(row.hmac_secret)
        read = client.get(f"{LIST}{row.uuid}/").json()
        assert read["public_key"] == body["public_key"]
        assert "hmac_secret" not in read

    def test_per_subscriber_choice(self, client: APIClient) -> None:
        """A client that sends its own whsk_ key gets ed25519 for that subscription alone."""
        chosen = generate_signing_key()
        created = client.post(
            LIST, {"event": "a.*", "url": HOOK, "hmac_secret": chosen}, format="json"
        )
        hmac = client.post(LIST, {"event": "a.*", "url": HOOK}, format="json")

        assert created.json()["public_key"] == public_key(chosen)
        assert hmac.json()["hmac_secret"].startswith("whsec_")
        assert hmac.json()["public_key"] is None
        listed = {s["uuid"]: s["public_key"] for s in client.get(LIST).json()}
        assert listed == {
            created.json()["uuid"]: public_key(chosen),
            hmac.json()["uuid"]: None,
        }

    @pytest.mark.parametrize(
        ("secret", "words"),
        [("whsk_" + base64.b64encode(b"k" * 31).decode(), "32 bytes"), (PUBLIC_KEY, "verifies")],
    )
    def test_bad_key_is_a_400(self, client: APIClient, secret: str, words: str) -> None:
        """A malformed whsk_ key, or a whpk_ key, is refused with the reason."""
        answer = client.post(
            LIST, {"event": "a.*", "url": HOOK, "hmac_secret": secret}, format="json"
        )

        assert answer.status_code == 400
        assert words in " ".join(answer.json()["hmac_secret"])
        assert not Subscriber.objects.exists()


class TestChecks:
    def test_unknown_scheme(self) -> None:
        """An unknown THORN_SIGNATURE is reported by ``manage.py check`` (thorn.E006)."""
        output = check_output(THORN_SIGNATURE="rsa")

        assert "thorn.E006" in output
        assert "THORN_SIGNATURE" in output


class TestCommands:
    """``thorn_subscribers add`` prints the public key of an ed25519 subscriber, once."""

    def test_add_prints_the_public_key(self) -> None:
        """Under THORN_SIGNATURE="ed25519" the new row's public key follows its secret; an
        HMAC row prints none."""
        with override_settings(THORN_SIGNATURE="ed25519"):
            output = run_command("thorn_subscribers", "add", "a.*", HOOK)
        row = Subscriber.objects.get()
        hmac_output = run_command("thorn_subscribers", "add", "b.*", HOOK)

        assert f"Secret (shown once): {row.hmac_secret}" in output
        assert f"Public key (for its receiver): {public_key(row.hmac_secret)}" in output
        assert "Public key" not in hmac_output


def run_command(*args: str) -> str:
    """Run a management command and return what it printed."""
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
