"""Receiver-side verification, subscription checks and test pings, against real receivers."""

from __future__ import annotations

import base64
import ipaddress
import time

import pytest

from thorn_core import Event, InvalidSignature, Subscriber
from thorn_core.ping import PING_EVENT, ping
from thorn_core.subscriptions import SubscriptionInvalid, check_subscription, ensure_subscription
from thorn_core.verification import parse_payload, verify_request

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef01234567").decode()


def _public(host: str, port: int) -> tuple[ipaddress.IPv4Address, ...]:
    return (ipaddress.IPv4Address("93.184.216.34"),)


class TestVerifyRequest:
    """verify_request accepts what Thorn sends and refuses tampering and replays."""

    def _delivered(self, make_app, receiver, **subscriber):
        app = make_app({"THORN_SUBSCRIBERS": {"*": {"url": receiver.url(), **subscriber}}})
        Event("user.created", app=app).send({"id": 1, "name": "Ada"})
        return receiver.wait_for(1)[0]

    def test_accepts_a_real_delivery(self, make_app, receiver):
        """A delivery verifies with its secret and its JSON payload is parsed."""
        got = self._delivered(make_app, receiver, hmac_secret=SECRET)
        webhook = verify_request(got.headers, got.body, SECRET)
        assert webhook.payload == {"id": 1, "name": "Ada"}
        assert webhook.event == "user.created"
        assert webhook.delivery_id == got.headers["hook-delivery"]

    def test_form_payload_is_parsed(self, make_app, receiver):
        """A form-encoded delivery is parsed into a dict."""
        got = self._delivered(
            make_app,
            receiver,
            hmac_secret=SECRET,
            content_type="application/x-www-form-urlencoded",
        )
        assert verify_request(got.headers, got.body, SECRET).payload == {"id": "1", "name": "Ada"}

    def test_secret_rotation(self, make_app, receiver):
        """Any of several secrets may match."""
        got = self._delivered(make_app, receiver, hmac_secret=SECRET)
        assert verify_request(got.headers, got.body, ["whsec_b2xk", SECRET]).payload["id"] == 1

    def test_wrong_secret_is_refused(self, make_app, receiver):
        """Another secret does not verify."""
        got = self._delivered(make_app, receiver, hmac_secret=SECRET)
        with pytest.raises(InvalidSignature):
            verify_request(got.headers, got.body, "whsec_" + base64.b64encode(b"x" * 24).decode())

    def test_tampered_body_is_refused(self, make_app, receiver):
        """A changed body does not verify."""
        got = self._delivered(make_app, receiver, hmac_secret=SECRET)
        with pytest.raises(InvalidSignature):
            verify_request(got.headers, got.body.replace(b"Ada", b"Eve"), SECRET)

    def test_stale_delivery_is_refused(self, make_app, receiver):
        """A delivery replayed ten minutes later is refused."""
        got = self._delivered(make_app, receiver, hmac_secret=SECRET)
        with pytest.raises(InvalidSignature):
            verify_request(got.headers, got.body, SECRET, now=time.time() + 600)

    def test_missing_signatures_are_refused(self):
        """A request without signature headers is refused."""
        with pytest.raises(InvalidSignature):
            verify_request({"Content-Type": "application/json"}, b"{}", SECRET)

    def test_hook_hmac_only_needs_opt_in(self, make_app, receiver):
        """A Thorn 1.x style request (Hook-HMAC only) passes only with require_timestamp=False."""
        got = self._delivered(make_app, receiver, hmac_secret=SECRET)
        legacy = {k: v for k, v in got.headers.items() if not k.startswith("webhook-")}
        with pytest.raises(InvalidSignature):
            verify_request(legacy, got.body, SECRET)
        assert verify_request(legacy, got.body, SECRET, require_timestamp=False).payload["id"] == 1

    def test_parse_payload_keeps_unknown_types_raw(self):
        """A body of another content type is returned as bytes."""
        assert parse_payload("text/plain", b"hi") == b"hi"


class TestCheckSubscription:
    """check_subscription gives per-field messages for what an API must refuse."""

    def test_valid_subscription_has_no_errors(self, make_app):
        """A well-formed pattern, a public URL, a known content type and digest pass."""
        app = make_app(resolver=_public)
        data = {
            "event": "user.*",
            "url": "https://hooks.example.com/in",
            "content_type": "application/json",
            "hmac_digest": "sha512",
        }
        assert check_subscription(app, data) == {}

    def test_each_bad_field_has_a_message(self):
        """Every bad field is reported at once, under its own name."""
        from thorn_core import Thorn

        app = Thorn(set_as_current=False, resolver=_public)
        errors = check_subscription(
            app,
            {
                "event": "user.*.x",
                "url": "http://169.254.169.254/latest",
                "content_type": "text/xml",
                "hmac_digest": "md5",
            },
        )
        assert set(errors) == {"event", "url", "content_type", "hmac_digest"}
        assert "link-local" in errors["url"][0]

    def test_event_choices_restrict_the_pattern(self, make_app):
        """With THORN_EVENT_CHOICES, other patterns are refused."""
        app = make_app({"THORN_EVENT_CHOICES": ["user.*", "order.paid"]})
        assert check_subscription(app, {"event": "order.paid"}) == {}
        assert "event" in check_subscription(app, {"event": "order.*"})

    def test_ensure_raises_with_errors(self, make_app):
        """ensure_subscription raises SubscriptionInvalid carrying the messages."""
        app = make_app()
        with pytest.raises(SubscriptionInvalid) as raised:
            ensure_subscription(app, {"url": "ftp://example.com/"})
        assert list(raised.value.errors) == ["url"]


class TestPing:
    """ping delivers to one subscriber alone, whatever its pattern."""

    def test_ping_reaches_only_that_subscriber(self, make_app, receiver, make_receiver):
        """The pinged subscriber gets a signed thorn.ping; a catch-all subscriber gets nothing."""
        bystander = make_receiver()
        app = make_app({"THORN_SUBSCRIBERS": {"*": bystander.url()}})
        target = Subscriber(url=receiver.url("/ping"), event="order.paid", hmac_secret=SECRET)

        delivery = ping(app, target)

        assert delivery.ok
        got = receiver.wait_for(1)[0]
        webhook = verify_request(got.headers, got.body, SECRET)
        assert webhook.event == PING_EVENT
        assert webhook.payload["subscription"] == str(target.uuid)
        assert bystander.received == []

    def test_ping_to_a_refused_url_is_recorded(self, make_app):
        """A ping to a URL the default validators refuse fails without a connection."""
        from thorn_core import Thorn

        app = Thorn(set_as_current=False)
        delivery = ping(app, Subscriber(url="http://127.0.0.1:9/"))
        assert not delivery.ok
        assert delivery.attempts == 0


class TestSecretsFor:
    """secrets_for turns a secret, a list or a lookup into the secrets to verify with."""

    def test_values_and_lookups(self):
        """A string, a list and a callable's answer become a list of secrets."""
        from thorn_core.verification import secrets_for

        assert secrets_for("s", None) == ["s"]
        assert secrets_for(["a", "b"], None) == ["a", "b"]
        assert secrets_for(lambda request: request["secret"], {"secret": "c"}) == ["c"]

    @pytest.mark.parametrize(
        "lookup",
        [lambda request: None, lambda request: [], lambda request: {}["missing"]],
    )
    def test_unknown_sender_is_an_invalid_signature(self, lookup):
        """A lookup that finds nothing, or raises, refuses the webhook (a 401, not a 500)."""
        from thorn_core.verification import secrets_for

        with pytest.raises(InvalidSignature, match="no secret"):
            secrets_for(lookup, object())
