"""Secret rotation: both secrets sign during the grace period, only the new one after it."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from thorn_core import Event, Subscriber
from thorn_core.exceptions import InvalidRotation, InvalidSubscriber, SecretDecryptionError
from thorn_core.rotation import DEFAULT_GRACE, rotate_secret
from thorn_core.secretset import SecretSet, SubscriberSecret, utcnow
from thorn_core.signing import verify_hook_hmac, webhook_signature
from thorn_core.subscribers import stored_subscriber, subscriber_from_row

WAIT = 5.0


def deliver(make_app, receiver, subscriber):
    """Send one event to ``subscriber`` through a real loopback delivery; the request."""
    app = make_app({"THORN_SUBSCRIBERS": {"*": subscriber}})
    Event("invoice.paid", app=app).send({"id": 7})
    (received,) = receiver.wait_for(1, WAIT)
    return received


class TestRotateSecret:
    """rotate_secret() makes a new current secret and keeps the old one for the grace."""

    def test_static_rotation_keeps_old_secret_for_a_day(self):
        """A static subscriber comes back with a new secret; the old one expires in 24 h."""
        before = Subscriber(url="https://example.com/hooks")
        start = utcnow()

        after = rotate_secret(before)

        assert after.hmac_secret != before.hmac_secret
        assert after.hmac_secret.startswith("whsec_")
        (old,) = after.previous_secrets
        assert old.secret == before.hmac_secret
        assert start + DEFAULT_GRACE <= old.expires_at <= utcnow() + DEFAULT_GRACE
        assert after.live_secrets() == (after.hmac_secret, before.hmac_secret)
        assert after.uuid == before.uuid
        assert after.url == before.url

    def test_expired_secrets_are_dropped_on_the_next_rotation(self):
        """A rotation after the grace keeps only the secret it replaces."""
        first = Subscriber(url="https://example.com/hooks")
        long_ago = utcnow() - dt.timedelta(days=3)
        second = rotate_secret(first, now=long_ago)

        third = rotate_secret(second)

        assert [s.secret for s in third.previous_secrets] == [second.hmac_secret]
        assert first.hmac_secret not in third.live_secrets()

    def test_zero_grace_drops_the_old_secret_at_once(self):
        """grace=0 means the old secret never signs again."""
        before = Subscriber(url="https://example.com/hooks")

        after = rotate_secret(before, dt.timedelta(0))

        assert after.previous_secrets == ()
        assert after.live_secrets() == (after.hmac_secret,)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"grace": dt.timedelta(seconds=-1)}, "must not be negative"),
            ({"grace": 3600}, "must be a timedelta"),
            ({"secret": ""}, "unusable"),
            ({"secret": "whsec_!!not base64"}, "unusable"),
        ],
    )
    def test_bad_arguments_are_refused(self, kwargs, message):
        """A negative or non-timedelta grace, or an unusable new secret: InvalidRotation."""
        with pytest.raises(InvalidRotation, match=message):
            rotate_secret(Subscriber(url="https://example.com/hooks"), **kwargs)

    def test_the_same_secret_is_refused(self):
        """Rotating to the current secret would change nothing: refused."""
        sub = Subscriber(url="https://example.com/hooks", hmac_secret="s3cret-current")
        with pytest.raises(InvalidRotation, match="differ"):
            rotate_secret(sub, secret="s3cret-current")

    def test_secrets_are_not_in_repr(self):
        """Neither the current nor an older secret shows in a subscriber's repr."""
        sub = rotate_secret(Subscriber(url="https://example.com/hooks", hmac_secret="old-one"))
        text = repr(sub) + repr(sub.secrets) + repr(sub.previous_secrets)
        assert "old-one" not in text
        assert sub.hmac_secret not in text


class TestRotationOnTheWire:
    """Deliveries during and after a rotation verify with the Standard Webhooks library."""

    def test_both_secrets_verify_during_the_grace(self, make_app, receiver):
        """Two v1 entries: the reference library accepts the old and the new secret alone."""
        before = Subscriber(url=receiver.url())
        after = rotate_secret(before)

        received = deliver(make_app, receiver, after)

        entries = received.headers["webhook-signature"].split(" ")
        assert len(entries) == 2
        assert all(e.startswith("v1,") for e in entries)
        for secret in (before.hmac_secret, after.hmac_secret):
            assert Webhook(secret).verify(received.body, dict(received.headers)) == {"id": 7}
        verify_hook_hmac(after.hmac_secret, received.body, received.headers["hook-hmac"])
        with pytest.raises(Exception, match="does not match"):
            verify_hook_hmac(before.hmac_secret, received.body, received.headers["hook-hmac"])

    def test_thorn_receivers_accept_either_secret_during_the_grace(self, make_app, receiver):
        """verify_request with only the old (or only the new) secret accepts the delivery,
        though Hook-HMAC is made with the new one; a wrong secret is still refused."""
        from thorn_core.exceptions import InvalidSignature
        from thorn_core.verification import verify_request

        before = Subscriber(url=receiver.url())
        after = rotate_secret(before)

        received = deliver(make_app, receiver, after)

        for secret in (before.hmac_secret, after.hmac_secret):
            assert verify_request(received.headers, received.body, secret).payload == {"id": 7}
        with pytest.raises(InvalidSignature):
            verify_request(received.headers, received.body, "whsec_" + "QUFB" * 8)

    def test_only_the_new_secret_verifies_after_the_grace(self, make_app, receiver):
        """Once the old secret expired, it signs nothing and the library rejects it."""
        before = Subscriber(url=receiver.url())
        after = rotate_secret(before, now=utcnow() - dt.timedelta(hours=25))
        assert len(after.previous_secrets) == 1  # still stored, but expired

        received = deliver(make_app, receiver, after)

        assert len(received.headers["webhook-signature"].split(" ")) == 1
        assert Webhook(after.hmac_secret).verify(received.body, dict(received.headers))
        with pytest.raises(WebhookVerificationError):
            Webhook(before.hmac_secret).verify(received.body, dict(received.headers))

    def test_plain_secrets_rotate_too(self, make_app, receiver):
        """A 1.x-style plain secret rotates; the library verifies with base64 of each."""
        before = Subscriber(url=receiver.url(), hmac_secret="legacy-plain-secret")
        after = rotate_secret(before, secret="the-new-plain-secret")

        received = deliver(make_app, receiver, after)

        for secret in ("legacy-plain-secret", "the-new-plain-secret"):
            key = base64.b64encode(secret.encode()).decode()
            assert Webhook(key).verify(received.body, dict(received.headers)) == {"id": 7}

    def test_webhook_signature_joins_one_entry_per_secret(self):
        """webhook_signature() gives the entries in the order of the secrets, space-separated."""
        one = webhook_signature("a-secret", "msg_1", 1700000000, b"{}")
        two = webhook_signature(["b-secret", "a-secret"], "msg_1", 1700000000, b"{}")
        assert two.split(" ")[1] == one
        assert two.split(" ")[0] != one


class TestSecretValues:
    """SubscriberSecret and SecretSet, and subscribers carrying them across a queue."""

    def test_as_dict_round_trip_keeps_expiries(self):
        """as_dict()/from_dict() (a Celery task's wire form) keep the older secrets."""
        after = rotate_secret(Subscriber(url="https://example.com/hooks"))

        again = Subscriber.from_dict(after.as_dict())

        assert again == after
        assert isinstance(after.as_dict()["previous_secrets"][0]["expires_at"], str)

    def test_as_dict_without_rotation_has_no_new_key(self):
        """A subscriber that never rotated is written as before (older readers accept it)."""
        assert "previous_secrets" not in Subscriber(url="https://example.com/hooks").as_dict()

    def test_naive_expiry_is_utc_and_expiry_is_exclusive(self):
        """A naive expiry is read as UTC; at the expiry itself the secret no longer signs."""
        at = dt.datetime(2030, 1, 1, 12, 0)
        secret = SubscriberSecret("s3cret", at)
        assert secret.expires_at == at.replace(tzinfo=dt.timezone.utc)
        assert secret.is_live(secret.expires_at - dt.timedelta(seconds=1))
        assert not secret.is_live(secret.expires_at)

    @pytest.mark.parametrize(
        "value", [{"secret": "x", "expires": None}, 42, [{"secret": ""}], "not json"]
    )
    def test_malformed_previous_secrets_are_refused(self, value):
        """Older secrets of the wrong shape are an InvalidSubscriber, never a crash later."""
        with pytest.raises(InvalidSubscriber):
            Subscriber(url="https://example.com/hooks", previous_secrets=value)

    def test_previous_secrets_from_column_json(self):
        """The JSON text a column holds is read as the older secrets."""
        stored = SecretSet("new", (SubscriberSecret("old", utcnow() + DEFAULT_GRACE),))
        sub = Subscriber(
            url="https://example.com/hooks",
            hmac_secret="new",
            previous_secrets=stored.previous_json(),
        )
        assert sub.secrets == stored


class TestEncryption:
    """Secrets encrypted with THORN_SECRET_KEYS: any key reads, the newest writes."""

    @pytest.fixture
    def keys(self):
        fernet = pytest.importorskip("cryptography.fernet")
        return fernet.Fernet.generate_key().decode(), fernet.Fernet.generate_key().decode()

    def test_round_trip_and_key_rotation(self, keys):
        """A token of the old key is read after a new key is put first, and rewritten."""
        from thorn_core.encryption import cipher_for, decrypt_stored, encrypt_stored

        new, old = keys
        stored = encrypt_stored("whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", (old,))
        assert stored.startswith("fernet:")
        assert "c2VjcmV0" not in stored
        assert decrypt_stored(stored, (new, old)) == "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"
        assert cipher_for((new, old)).needs_rewrite(stored)
        assert not cipher_for((new, old)).needs_rewrite(encrypt_stored("x", (new, old)))

    def test_plain_values_pass_through(self, keys):
        """Rows written before encryption are read as they are, and encrypted on write."""
        from thorn_core.encryption import decrypt_stored, encrypt_stored

        assert decrypt_stored("plain-secret", keys) == "plain-secret"
        assert encrypt_stored("", keys) == ""
        assert encrypt_stored("plain", ()) == "plain"

    def test_malformed_key_is_refused_without_showing_it(self, make_app):
        """A key that is no Fernet key fails when the app is built; its value is not shown."""
        from thorn_core.exceptions import InvalidSecretKey

        with pytest.raises(InvalidSecretKey, match=r"THORN_SECRET_KEYS\[0\]") as info:
            make_app({"THORN_SECRET_KEYS": ["not-a-key-at-all"]})
        assert "not-a-key-at-all" not in str(info.value)

    def test_no_matching_key_names_the_subscriber_only(self, keys, caplog):
        """A row encrypted with an unknown key: an error naming its uuid, never the secret."""
        from thorn_core.encryption import decrypt_stored, encrypt_stored

        new, old = keys
        row = SimpleNamespace(
            uuid="6f1c1d7e-0b7a-4a53-9a53-2a1d6b0e9f11",
            url="https://example.com/hooks",
            event="*",
            hmac_secret=decrypt_stored(encrypt_stored("the-secret", (old,)), (new,)),
            hmac_digest="sha256",
            content_type="application/json",
            active=True,
        )
        with pytest.raises(SecretDecryptionError, match=str(row.uuid)) as info:
            subscriber_from_row(row)
        assert "the-secret" not in str(info.value)

        with caplog.at_level(logging.WARNING):
            assert stored_subscriber(row) is None
        assert row.uuid in caplog.text
        assert "the-secret" not in caplog.text

    def test_cryptography_is_imported_only_with_keys(self):
        """Building an app without THORN_SECRET_KEYS does not import cryptography."""
        code = (
            "import sys, thorn_core, thorn_core.rotation, thorn_core.encryption\n"
            "thorn_core.Thorn({'THORN_DISPATCHER': 'disabled'})\n"
            "assert 'cryptography' not in sys.modules, 'cryptography imported'"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # noqa: S603


class TestStaticCommand:
    """``thorn rotate-secret`` for a static subscriber of THORN_SUBSCRIBERS."""

    def test_prints_the_fields_with_the_new_secret_once(self):
        """The current secret is read unechoed; the new one appears once, the old one with
        its expiry, as JSON to put in the subscriber's entry."""
        import json

        from click.testing import CliRunner

        from thorn_core.cli import main

        old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        result = CliRunner().invoke(main, ["rotate-secret", "--grace", "3600"], input=old + "\n")

        assert result.exit_code == 0, result.output
        fields = json.loads(result.output[result.output.index("{") :])
        assert result.output.count(fields["hmac_secret"]) == 1
        (previous,) = fields["previous_secrets"]
        assert previous["secret"] == old
        sub = Subscriber(url="https://example.com/hooks", **fields)
        assert sub.live_secrets() == (fields["hmac_secret"], old)

    def test_negative_grace_is_a_usage_error(self):
        """--grace -1 exits 2 naming the problem; nothing is printed as a secret."""
        from click.testing import CliRunner

        from thorn_core.cli import main

        result = CliRunner().invoke(main, ["rotate-secret", "--grace=-1"], input="s3cret\n")
        assert result.exit_code == 2
        assert "negative" in result.output
