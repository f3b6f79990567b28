"""Asymmetric ``v1a`` signatures: ed25519 ``whsk_``/``whpk_`` keys, signing, verifying, and the
``thorn keys``/``verify``/``listen`` commands, against real receivers on 127.0.0.1."""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from thorn_core import (
    Event,
    ImproperlyConfigured,
    InvalidSignature,
    InvalidSubscriber,
    Subscriber,
    Thorn,
)
from thorn_core.ed25519 import generate_keypair, generate_signing_key, public_key
from thorn_core.exceptions import InvalidEd25519Key
from thorn_core.fanout import plan_deliveries
from thorn_core.receiver import ReceivedWebhook, WebhookReceiver
from thorn_core.rotation import rotate_secret
from thorn_core.signing import (
    generate_secret,
    new_secret_like,
    verify_standard_webhook,
    webhook_signature,
)
from thorn_core.testing import WebhookRecorder
from thorn_core.verification import verify_request

from .test_cli import Listener, assert_user_error, run, write_capture

#: A fixed key pair (the seed is 32 bytes of 0x01), so failures are reproducible.
SIGNING_KEY = "whsk_" + base64.b64encode(bytes([1]) * 32).decode()
PUBLIC_KEY = public_key(SIGNING_KEY)
HMAC_SECRET = "whsec_" + base64.b64encode(b"h" * 24).decode()


def raw_public(key: str) -> Ed25519PublicKey:
    """``cryptography``'s own public key object for a ``whpk_`` key (no Thorn code involved)."""
    assert key.startswith("whpk_")
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(key[len("whpk_") :]))


def delivered(
    app: Thorn, receiver: WebhookReceiver, secret: str | Subscriber = SIGNING_KEY
) -> ReceivedWebhook:
    """One real delivery of ``user.created`` signed with ``secret`` (or by a subscriber), as
    the receiver got it."""
    subscriber = (
        secret
        if isinstance(secret, Subscriber)
        else Subscriber(url=receiver.url("/hooks"), hmac_secret=secret)
    )
    result = Event("user.created", app=app).send({"id": 1}, subscribers=[subscriber])
    assert [d.ok for d in result.deliveries] == [True]
    return receiver.wait_for(1)[0]


class TestKeys:
    """Keys in the Standard Webhooks form: ``whsk_``/``whpk_`` + base64 of 32 bytes."""

    def test_generated_pair(self) -> None:
        """A generated pair holds 32-byte keys, and the public key is the signing key's."""
        secret, public = generate_keypair()

        assert secret.startswith("whsk_")
        assert public.startswith("whpk_")
        assert len(base64.b64decode(secret[5:])) == 32
        assert len(base64.b64decode(public[5:])) == 32
        assert public_key(secret) == public
        assert generate_keypair()[0] != secret

    def test_hmac_secret_has_no_public_key(self) -> None:
        """An HMAC secret, or no string at all, has no public key: None (the API's null)."""
        assert public_key(HMAC_SECRET) is None
        assert public_key("plain-secret") is None
        assert public_key(None) is None

    @pytest.mark.parametrize(
        ("key", "words"),
        [
            ("whsk_!!!!", "base64"),
            ("whsk_" + base64.b64encode(b"x" * 31).decode(), "32 bytes"),
            ("whsk_" + base64.b64encode(b"x" * 33).decode(), "holds 33"),
            ("whsk_", "holds 0"),
        ],
    )
    def test_malformed_signing_key(self, key: str, words: str) -> None:
        """A malformed whsk_ key is refused with InvalidEd25519Key saying why."""
        with pytest.raises(InvalidEd25519Key, match=words):
            public_key(key)
        with pytest.raises(InvalidSubscriber, match=words):
            Subscriber(url="https://example.com/hook", hmac_secret=key)

    def test_public_key_is_no_subscriber_secret(self) -> None:
        """A whpk_ key cannot sign: a subscriber given one is refused, naming the whsk_ key."""
        assert PUBLIC_KEY is not None
        with pytest.raises(InvalidSubscriber, match="whsk_"):
            Subscriber(url="https://example.com/hook", hmac_secret=PUBLIC_KEY)

    @pytest.mark.parametrize(
        "key", ["whpk_%%%", "whpk_" + base64.b64encode(b"k" * 16).decode(), "whsk_AAAA"]
    )
    def test_malformed_verification_key(self, key: str) -> None:
        """Verifying with a malformed key is a configuration error, never a silent failure."""
        headers = {"webhook-id": "m", "webhook-timestamp": str(int(time.time()))}
        headers["webhook-signature"] = "v1a,AAAA"
        with pytest.raises(InvalidEd25519Key):
            verify_standard_webhook(key, headers, b"{}")

    def test_rotation_keeps_the_kind(self) -> None:
        """A rotation replaces a whsk_ key with a new whsk_ key, an HMAC secret with HMAC."""
        assert new_secret_like(SIGNING_KEY).startswith("whsk_")
        assert new_secret_like(SIGNING_KEY) != SIGNING_KEY
        assert new_secret_like(HMAC_SECRET).startswith("whsec_")


class TestSignature:
    """``v1a,<base64>`` over ``id.timestamp.body``, checked with cryptography's own API."""

    def test_v1a_verifies_with_cryptography(self) -> None:
        """Thorn's signature verifies with Ed25519PublicKey.verify, independent of Thorn."""
        body = b'{"id": 1}'
        header = webhook_signature(SIGNING_KEY, "msg_1", 1_700_000_000, body)

        version, _, encoded = header.partition(",")
        assert version == "v1a"
        signature = base64.b64decode(encoded, validate=True)
        assert PUBLIC_KEY is not None
        raw_public(PUBLIC_KEY).verify(signature, b"msg_1.1700000000." + body)
        with pytest.raises(CryptoInvalidSignature):
            raw_public(PUBLIC_KEY).verify(signature, b"msg_1.1700000000." + body + b" ")
        with pytest.raises(CryptoInvalidSignature):
            raw_public(PUBLIC_KEY).verify(signature, b"msg_1.1700000001." + body)

    def test_mixed_rotation_header(self) -> None:
        """While an HMAC secret is replaced by a whsk_ key, both entries are sent, in order."""
        header = webhook_signature([SIGNING_KEY, HMAC_SECRET], "m", 1, b"x")

        assert [entry.split(",")[0] for entry in header.split()] == ["v1a", "v1"]


class TestDelivery:
    """A real loopback delivery of an ed25519 subscriber, verified on the receiver's side."""

    def test_verify_request_with_public_key(self, app: Thorn, receiver: WebhookReceiver) -> None:
        """The receiver verifies with the whpk_ key alone; the sender sends no Hook-HMAC."""
        webhook = delivered(app, receiver)

        assert "hook-hmac" not in webhook.headers
        assert webhook.headers["webhook-signature"].startswith("v1a,")
        assert PUBLIC_KEY is not None
        verified = verify_request(webhook.headers, webhook.body, PUBLIC_KEY)
        assert verified.payload == {"id": 1}
        assert verified.delivery_id == webhook.headers["webhook-id"]

    def test_signature_checked_with_cryptography(
        self, app: Thorn, receiver: WebhookReceiver
    ) -> None:
        """The delivered v1a entry verifies with cryptography over id.timestamp.body."""
        webhook = delivered(app, receiver)
        headers = webhook.headers
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + webhook.body
        assert PUBLIC_KEY is not None

        raw_public(PUBLIC_KEY).verify(
            base64.b64decode(headers["webhook-signature"].split(",", 1)[1]), signed
        )

    def test_refused(self, app: Thorn, receiver: WebhookReceiver) -> None:
        """A tampered body, another key, a stale timestamp or an HMAC secret are refused."""
        webhook = delivered(app, receiver)
        other = public_key(generate_signing_key())
        assert PUBLIC_KEY is not None
        assert other is not None

        with pytest.raises(InvalidSignature, match="no webhook-signature matches"):
            verify_request(webhook.headers, webhook.body + b" ", PUBLIC_KEY)
        with pytest.raises(InvalidSignature, match="no webhook-signature matches"):
            verify_request(webhook.headers, webhook.body, other)
        with pytest.raises(InvalidSignature, match="too old"):
            verify_request(webhook.headers, webhook.body, PUBLIC_KEY, now=time.time() + 3600)
        with pytest.raises(InvalidSignature, match="'v1,<base64>'"):
            verify_request(webhook.headers, webhook.body, HMAC_SECRET)

    def test_forged_v1a_entries(self, app: Thorn, receiver: WebhookReceiver) -> None:
        """Garbage, short or foreign v1a entries do not verify; the real one among them does."""
        webhook = delivered(app, receiver)
        real = webhook.headers["webhook-signature"]
        forged = "v1a,!!! v1a,AAAA v1a," + base64.b64encode(b"\0" * 64).decode()
        assert PUBLIC_KEY is not None

        with pytest.raises(InvalidSignature):
            verify_request(
                {**webhook.headers, "webhook-signature": forged}, webhook.body, PUBLIC_KEY
            )
        mixed = {**webhook.headers, "webhook-signature": f"{forged} {real}"}
        assert verify_request(mixed, webhook.body, PUBLIC_KEY).payload == {"id": 1}

    def test_key_list_while_moving_to_ed25519(
        self, app: Thorn, make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """A receiver holding the old HMAC secret and the new public key accepts both kinds."""
        assert PUBLIC_KEY is not None
        for secret in (HMAC_SECRET, SIGNING_KEY):
            webhook = delivered(app, make_receiver(), secret)
            verify_request(webhook.headers, webhook.body, [HMAC_SECRET, PUBLIC_KEY])

    def test_hook_hmac_only_needs_an_hmac_secret(
        self, app: Thorn, receiver: WebhookReceiver
    ) -> None:
        """Without webhook-signature (a 1.x-style request), a public key alone cannot verify."""
        webhook = delivered(app, receiver)
        headers = {k: v for k, v in webhook.headers.items() if not k.startswith("webhook-")}
        assert PUBLIC_KEY is not None

        with pytest.raises(InvalidSignature, match="missing webhook-signature"):
            verify_request(headers, webhook.body, PUBLIC_KEY, require_timestamp=False)


class TestRotation:
    """Rotating a whsk_ key: both v1a entries during the grace, either public key verifies."""

    def test_both_keys_verify_during_the_grace(
        self, app: Thorn, make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """During the grace a receiver with the old or the new public key accepts the
        delivery; after it, only the new one does."""
        receiver = make_receiver()
        subscriber = Subscriber(url=receiver.url("/hooks"), hmac_secret=SIGNING_KEY)
        rotated = rotate_secret(subscriber, datetime.timedelta(hours=1))
        new_public = public_key(rotated.hmac_secret)
        assert rotated.hmac_secret.startswith("whsk_")
        assert new_public is not None
        assert PUBLIC_KEY is not None

        webhook = delivered(app, receiver, rotated)
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)
        after = webhook_signature(rotated.live_secrets(later), "m", 1, b"x")

        assert [e.split(",")[0] for e in webhook.headers["webhook-signature"].split()] == [
            "v1a",
            "v1a",
        ]
        for key in (PUBLIC_KEY, new_public):
            verify_request(webhook.headers, webhook.body, key)
        assert after.count("v1a,") == 1
        assert ed25519_verifies(new_public, after, b"m.1.x")
        assert not ed25519_verifies(PUBLIC_KEY, after, b"m.1.x")

    def test_moving_from_hmac_to_ed25519(self, app: Thorn, receiver: WebhookReceiver) -> None:
        """Rotating an HMAC subscriber to a whsk_ key sends v1a, v1 and Hook-HMAC (the old
        secret) during the grace: the old receiver, the new one, or one holding both verify."""
        subscriber = Subscriber(url=receiver.url("/hooks"), hmac_secret=HMAC_SECRET)
        moved = rotate_secret(subscriber, datetime.timedelta(hours=1), secret=SIGNING_KEY)
        assert PUBLIC_KEY is not None

        webhook = delivered(app, receiver, moved)

        versions = [e.split(",")[0] for e in webhook.headers["webhook-signature"].split()]
        assert versions == ["v1a", "v1"]
        assert "hook-hmac" in webhook.headers
        for keys in (HMAC_SECRET, PUBLIC_KEY, [HMAC_SECRET, PUBLIC_KEY]):
            verify_request(webhook.headers, webhook.body, keys)


def ed25519_verifies(key: str, header: str, content: bytes) -> bool:
    """Whether one v1a entry of ``header`` verifies ``content`` with cryptography directly."""
    for entry in header.split():
        try:
            raw_public(key).verify(base64.b64decode(entry.split(",", 1)[1]), content)
        except CryptoInvalidSignature:
            continue
        return True
    return False


class TestRecorder:
    """``thorn_core.testing.WebhookRecorder`` takes a whsk_ key like any secret."""

    def test_recorder_verifies_v1a(self, app: Thorn) -> None:
        """Its subscriber signs with the key, and it verifies with the key's public half."""
        with WebhookRecorder(secret=SIGNING_KEY) as recorder:
            recorder.subscribe(app, "user.*")
            Event("user.created", app=app).send({"id": 1})
            (delivery,) = recorder.assert_received("user.created")

        assert delivery.request.headers["webhook-signature"].startswith("v1a,")


class TestBufferedPlan:
    """A plan held longer than ``FRESH_FOR`` (a buffer) is signed again before sending."""

    def test_resigned_plan_keeps_v1a_without_hook_hmac(self, app: Thorn) -> None:
        """Re-signing an ed25519 subscriber's plan gives a new timestamp and a v1a entry that
        verifies, and still no Hook-HMAC."""
        subscriber = Subscriber(url="https://example.com/hook", hmac_secret=SIGNING_KEY)
        message = Event("user.created", app=app).prepare({"id": 1}, app=app)
        plan = plan_deliveries(app, message, [subscriber])
        old = attrs.evolve(plan, signed_at=plan.signed_at - 3600)

        (request,) = old.fresh(app, message).requests

        assert "Hook-HMAC" not in request.headers
        assert int(request.headers["webhook-timestamp"]) >= plan.signed_at
        assert PUBLIC_KEY is not None
        verify_request(request.headers, request.body, PUBLIC_KEY)


class TestSetting:
    """``THORN_SIGNATURE`` chooses the kind of secret new subscribers get."""

    def test_unknown_scheme(self) -> None:
        """An unknown scheme is a configuration error naming the setting and the choices."""
        with pytest.raises(ImproperlyConfigured, match=r"THORN_SIGNATURE.*'hmac' or 'ed25519'"):
            Thorn({"THORN_SIGNATURE": "rsa"}, set_as_current=False)
        with pytest.raises(ImproperlyConfigured, match="unknown signature scheme"):
            generate_secret(scheme="rsa")

    def test_ed25519_site_wide(self, make_app: Callable[..., Thorn]) -> None:
        """With "ed25519" on the configured app, new secrets (and subscribers) are whsk_ keys."""
        make_app({"THORN_SIGNATURE": "ed25519"}, set_as_current=True)

        assert generate_secret().startswith("whsk_")
        assert Subscriber(url="https://example.com/hook").hmac_secret.startswith("whsk_")
        assert generate_secret(scheme="hmac").startswith("whsec_")

    def test_hmac_by_default(self, make_app: Callable[..., Thorn]) -> None:
        """Without the setting (or without a configured app), new secrets are whsec_ HMAC."""
        assert generate_secret().startswith("whsec_")
        make_app({}, set_as_current=True)
        assert generate_secret().startswith("whsec_")


#: Run in a fresh interpreter where ``import cryptography`` fails, as without the extra.
_WITHOUT_CRYPTOGRAPHY = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == "cryptography" or name.startswith("cryptography."):
            raise ImportError(f"No module named {name!r} (blocked for the test)")
        return None

sys.meta_path.insert(0, Blocker())
"""


def without_cryptography(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a subprocess that cannot import cryptography."""
    return subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", _WITHOUT_CRYPTOGRAPHY + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )


class TestWithoutTheExtra:
    """Without ``cryptography``, choosing ed25519 is a clear error naming the extra."""

    def test_setting_is_a_start_up_error(self) -> None:
        """THORN_SIGNATURE="ed25519" fails when the app is built; HMAC apps are unaffected."""
        result = without_cryptography(
            "import thorn_core.verification\n"
            "from thorn_core import ImproperlyConfigured, Subscriber, Thorn\n"
            "Thorn({}, set_as_current=False).close()\n"
            "print('whsk_', thorn_core.signing.generate_secret(scheme='ed25519')[:5])\n"
            "try:\n"
            "    Thorn({'THORN_SIGNATURE': 'ed25519'}, set_as_current=False)\n"
            "except ImproperlyConfigured as exc:\n"
            "    print('setting:', exc)\n"
            "try:\n"
            f"    Subscriber(url='https://example.com/', hmac_secret={SIGNING_KEY!r})\n"
            "except ValueError as exc:\n"
            "    print('subscriber:', exc)\n"
            "try:\n"
            f"    thorn_core.verification.verify_request({{}}, b'', {PUBLIC_KEY!r})\n"
            "except ImproperlyConfigured as exc:\n"
            "    print('verify:', exc)\n"
            "print('loaded:', 'cryptography' in sys.modules)\n"
        )

        assert result.returncode == 0, result.stderr
        lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
        assert "THORN_SIGNATURE = 'ed25519'" in lines["setting"]
        for what in ("setting", "subscriber", "verify"):
            assert "pip install 'thorn-webhooks[ed25519]'" in lines[what], result.stdout
        assert lines["loaded"] == "False"
        assert "whsk_ whsk_" in result.stdout  # making a key needs no cryptography

    def test_keys_generate_says_what_to_install(self) -> None:
        """``thorn keys generate`` exits 1 with one error line naming the extra."""
        result = without_cryptography(
            "from thorn_core.cli import main\nmain(['keys', 'generate'], prog_name='thorn')\n"
        )

        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "Error: ed25519 signatures need the 'cryptography' package" in result.stderr
        assert "thorn-webhooks[ed25519]" in result.stderr

    def test_import_does_not_load_cryptography(self) -> None:
        """``import thorn_core`` and an HMAC app do not import cryptography (it is optional)."""
        code = (
            "import sys, thorn_core\n"
            "thorn_core.Thorn({}, set_as_current=False).close()\n"
            "print('cryptography' in sys.modules)\n"
        )
        result = subprocess.run(  # noqa: S603 - this interpreter, our own code
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )

        assert result.stdout.strip() == "False", result.stderr


class TestCommands:
    """``thorn keys`` prints key pairs; ``thorn verify``/``listen`` take a whpk_ key."""

    def test_keys_generate(self) -> None:
        """The printed public key is the printed signing key's, as cryptography derives it."""
        result = run("keys", "generate")

        assert result.exit_code == 0, result.output
        printed = dict(line.split(":", 1) for line in result.output.splitlines())
        secret = printed["signing key (secret)"].strip()
        public = printed["public key"].strip()
        assert secret.startswith("whsk_")
        assert public_key(secret) == public
        signed = webhook_signature(secret, "m", 1, b"x").split(",", 1)[1]
        raw_public(public).verify(base64.b64decode(signed), b"m.1.x")

    def test_keys_public(self) -> None:
        """``thorn keys public`` derives the whpk_ key; a malformed key is a usage error."""
        result = run("keys", "public", SIGNING_KEY)
        assert result.output.strip() == PUBLIC_KEY

        assert_user_error(run("keys", "public", "whsk_AAAA"), 2, "32 bytes")
        assert_user_error(run("keys", "public", HMAC_SECRET), 2, "not a whsk_")

    def test_verify_with_public_key(
        self, app: Thorn, receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """A captured ed25519 delivery verifies with --secret whpk_...; another key fails."""
        webhook = delivered(app, receiver)
        headers, body = write_capture(tmp_path, dict(webhook.headers), webhook.body)
        assert PUBLIC_KEY is not None
        other = public_key(generate_signing_key())
        assert other is not None

        good = run("verify", "--secret", PUBLIC_KEY, "--headers", headers, "--body", body)
        bad = run("verify", "--secret", other, "--headers", headers, "--body", body)
        malformed = run("verify", "--secret", "whpk_abc", "--headers", headers, "--body", body)

        assert good.exit_code == 0, good.output
        assert "Standard Webhooks signature: valid" in good.output
        assert_user_error(bad, 1, "no webhook-signature matches")
        assert_user_error(malformed, 2, "--secret")

    def test_verify_hook_hmac_not_checked_with_public_key(
        self, app: Thorn, receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """A capture carrying Hook-HMAC (an HMAC secret being rotated out) is said unchecked."""
        webhook = delivered(app, receiver)
        headers = {**webhook.headers, "hook-hmac": "AAAA"}
        headers_file, body = write_capture(tmp_path, headers, webhook.body, as_json=True)
        assert PUBLIC_KEY is not None

        result = run("verify", "--secret", PUBLIC_KEY, "--headers", headers_file, "--body", body)

        assert result.exit_code == 0, result.output
        assert "Hook-HMAC: not checked" in result.output
        assert json.loads(Path(headers_file).read_text())["hook-hmac"] == "AAAA"

    def test_listen_with_public_key(self, app: Thorn) -> None:
        """``thorn listen --secret whpk_...`` accepts the signed webhook, refuses another key's."""
        assert PUBLIC_KEY is not None
        running = Listener("--secret", PUBLIC_KEY)
        try:
            good = Subscriber(url=running.url + "hooks", hmac_secret=SIGNING_KEY)
            wrong = Subscriber(url=running.url + "hooks", hmac_secret=generate_signing_key())
            event = Event("user.created", app=app)

            ok = event.send({"id": 1}, subscribers=[good]).deliveries[0]
            assert ok.status_code == 200
            assert "verified" in running.expect("signature:")
            refused = event.send({"id": 2}, subscribers=[wrong]).deliveries[0]
            assert refused.status_code == 401
            assert "INVALID" in running.expect("signature:")
        finally:
            assert running.stop() == 0

    def test_send_with_signing_key(self, receiver: WebhookReceiver) -> None:
        """``thorn send --secret whsk_...`` signs v1a; a whpk_ key is refused as --secret."""
        sent = run(
            "send",
            "user.created",
            "--url",
            receiver.url("/hooks"),
            "--allow-loopback",
            "--secret",
            SIGNING_KEY,
        )
        assert sent.exit_code == 0, sent.output
        (webhook,) = receiver.wait_for(1)
        assert PUBLIC_KEY is not None
        verify_request(webhook.headers, webhook.body, PUBLIC_KEY)

        refused = run(
            "send",
            "user.created",
            "--url",
            receiver.url("/hooks"),
            "--allow-loopback",
            "--secret",
            PUBLIC_KEY,
        )
        assert_user_error(refused, 2, "--secret", "whsk_")

    def test_listen_refuses_malformed_key(self) -> None:
        """A malformed whpk_ key is a usage error before anything listens."""
        assert_user_error(run("listen", "--port", "0", "--secret", "whpk_@@"), 2, "--secret")
