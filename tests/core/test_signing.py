"""Tests for thorn_core.signing: Hook-HMAC, Standard Webhooks headers and verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import sys
import time
import types
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from thorn_core.exceptions import ImproperlyConfigured, InvalidSignature
from thorn_core.signing import (
    DIGESTS,
    generate_secret,
    hook_hmac,
    is_valid_hook_hmac,
    is_valid_standard_webhook,
    load_signer,
    standard_webhooks_headers,
    standard_webhooks_key,
    standard_webhooks_signature,
    verify_hook_hmac,
    verify_standard_webhook,
)

BODY = b'{"event":"article.published","data":{"title":"Caf\xc3\xa9"}}'
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PLAIN = "correct horse battery staple"
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
NOW = 1_700_000_000


def expected_hook_hmac(digest: str, key: bytes, body: bytes) -> str:
    """Compute Hook-HMAC independently of thorn_core."""
    return base64.b64encode(hmac.new(key, body, getattr(hashlib, digest)).digest()).decode()


class TestHookHmac:
    """Hook-HMAC: base64 of HMAC(secret as stored, body)."""

    @pytest.mark.parametrize("digest", sorted(DIGESTS))
    def test_known_answer_plain_secret(self, digest: str) -> None:
        """Every supported digest matches an independent hmac/base64 computation."""
        assert hook_hmac(digest, PLAIN, BODY) == expected_hook_hmac(digest, PLAIN.encode(), BODY)

    @pytest.mark.parametrize("digest", sorted(DIGESTS))
    def test_known_answer_whsec_secret_keeps_prefix(self, digest: str) -> None:
        """A whsec_ secret is used whole, prefix included, not base64-decoded."""
        assert hook_hmac(digest, WHSEC, BODY) == expected_hook_hmac(digest, WHSEC.encode(), BODY)

    def test_non_ascii_secret_is_utf8(self) -> None:
        """A str secret is encoded as UTF-8 to form the key."""
        secret = "clé-secrète"
        assert hook_hmac("sha256", secret, BODY) == expected_hook_hmac(
            "sha256", secret.encode("utf-8"), BODY
        )

    def test_bytes_secret_equals_str_secret(self) -> None:
        """A bytes secret gives the same signature as its UTF-8 str form."""
        assert hook_hmac("sha512", PLAIN.encode(), BODY) == hook_hmac("sha512", PLAIN, BODY)

    def test_fixed_vector(self) -> None:
        """A literal vector pins the format (HMAC-SHA256 of RFC 4231 test case 2)."""
        assert (
            hook_hmac("sha256", "Jefe", b"what do ya want for nothing?")
            == "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        )

    def test_digests_constant(self) -> None:
        """DIGESTS lists exactly the SHA family members Thorn supports."""
        assert frozenset({"sha1", "sha224", "sha256", "sha384", "sha512"}) == DIGESTS

    def test_unknown_digest_is_named(self) -> None:
        """An unknown digest raises ImproperlyConfigured naming it."""
        with pytest.raises(ImproperlyConfigured, match="'md5'"):
            hook_hmac("md5", PLAIN, BODY)


class TestVerifyHookHmac:
    """Receiver-side Hook-HMAC verification."""

    def test_valid_signature_passes(self) -> None:
        """A signature made with the secret verifies."""
        verify_hook_hmac(PLAIN, BODY, hook_hmac("sha256", PLAIN, BODY))

    @pytest.mark.parametrize("digest", sorted(DIGESTS))
    def test_each_digest_verifies(self, digest: str) -> None:
        """Verification honours the digest method given."""
        verify_hook_hmac(WHSEC, BODY, hook_hmac(digest, WHSEC, BODY), digest_method=digest)

    def test_tampered_body_is_rejected(self) -> None:
        """A body changed after signing fails with a mismatch."""
        signature = hook_hmac("sha256", PLAIN, BODY)
        with pytest.raises(InvalidSignature, match="does not match"):
            verify_hook_hmac(PLAIN, BODY + b" ", signature)

    def test_wrong_digest_is_malformed(self) -> None:
        """A sha1 signature checked as sha256 has the wrong length."""
        signature = hook_hmac("sha1", PLAIN, BODY)
        with pytest.raises(InvalidSignature, match="malformed"):
            verify_hook_hmac(PLAIN, BODY, signature, digest_method="sha256")

    @pytest.mark.parametrize("signature", [None, "", "   "])
    def test_missing_signature(self, signature: str | None) -> None:
        """An absent or blank header is reported as missing."""
        with pytest.raises(InvalidSignature, match="missing"):
            verify_hook_hmac(PLAIN, BODY, signature)

    def test_non_base64_signature(self) -> None:
        """A header that is not base64 is reported as malformed."""
        with pytest.raises(InvalidSignature, match="not base64"):
            verify_hook_hmac(PLAIN, BODY, "not*base64!")

    def test_rotation_accepts_any_secret(self) -> None:
        """With several secrets, a signature made with any of them verifies."""
        signature = hook_hmac("sha256", "old-secret", BODY)
        verify_hook_hmac(["new-secret", "old-secret"], BODY, signature)

    def test_rotation_rejects_unknown_secret(self) -> None:
        """With several secrets, a signature made with none of them fails."""
        signature = hook_hmac("sha256", "other", BODY)
        with pytest.raises(InvalidSignature):
            verify_hook_hmac(("new-secret", "old-secret"), BODY, signature)

    def test_empty_secret_list_is_config_error(self) -> None:
        """Verifying against no secret at all is a configuration error."""
        with pytest.raises(ImproperlyConfigured, match="no webhook secret"):
            verify_hook_hmac([], BODY, "AAAA")

    def test_unknown_digest_is_config_error(self) -> None:
        """An unknown digest is a configuration error, not a bad signature."""
        with pytest.raises(ImproperlyConfigured, match="'md5'"):
            verify_hook_hmac(PLAIN, BODY, "AAAA", digest_method="md5")

    def test_bool_variant(self) -> None:
        """is_valid_hook_hmac answers True for a good signature and False otherwise."""
        signature = hook_hmac("sha256", PLAIN, BODY)
        assert is_valid_hook_hmac(PLAIN, BODY, signature)
        assert not is_valid_hook_hmac(PLAIN, b"other", signature)
        assert not is_valid_hook_hmac(PLAIN, BODY, None)


class TestStandardWebhooksKey:
    """Key derivation for Standard Webhooks signatures."""

    def test_whsec_secret_is_base64_decoded(self) -> None:
        """The part after whsec_ is base64-decoded into the key."""
        assert standard_webhooks_key(WHSEC) == base64.b64decode(WHSEC[len("whsec_") :])

    def test_unpadded_whsec_secret(self) -> None:
        """A whsec_ secret without base64 padding still decodes."""
        encoded = base64.b64encode(b"\x01" * 25).decode().rstrip("=")
        assert standard_webhooks_key("whsec_" + encoded) == b"\x01" * 25

    def test_plain_secret_is_utf8(self) -> None:
        """Any other secret is used as its UTF-8 bytes."""
        assert standard_webhooks_key(PLAIN) == PLAIN.encode()

    @pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_"])
    def test_malformed_whsec_secret(self, secret: str) -> None:
        """A whsec_ secret that is not valid, non-empty base64 is a configuration error."""
        with pytest.raises(ImproperlyConfigured, match="whsec_"):
            standard_webhooks_key(secret)


class TestStandardWebhooksSigning:
    """Standard Webhooks headers, checked against the reference library."""

    def test_signature_known_answer(self) -> None:
        """The signature is v1, + base64 HMAC-SHA256 of 'id.timestamp.body'."""
        key = base64.b64decode(WHSEC[len("whsec_") :])
        digest = hmac.new(key, f"{MSG_ID}.{NOW}.".encode() + BODY, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(digest).decode()
        assert standard_webhooks_signature(WHSEC, MSG_ID, NOW, BODY) == expected

    def test_headers(self) -> None:
        """The three headers carry the id, the timestamp as text and the signature."""
        headers = standard_webhooks_headers(WHSEC, MSG_ID, NOW, BODY)
        assert headers == {
            "webhook-id": MSG_ID,
            "webhook-timestamp": str(NOW),
            "webhook-signature": standard_webhooks_signature(WHSEC, MSG_ID, NOW, BODY),
        }

    def test_reference_library_verifies_whsec_secret(self) -> None:
        """A receiver giving the reference library the whsec_ secret verifies our headers."""
        timestamp = int(time.time())
        headers = standard_webhooks_headers(WHSEC, MSG_ID, timestamp, BODY)
        assert Webhook(WHSEC).verify(BODY, headers) == {
            "event": "article.published",
            "data": {"title": "Café"},
        }

    def test_reference_library_verifies_plain_secret_as_base64(self) -> None:
        """A receiver giving the reference library base64(secret) verifies a plain secret."""
        timestamp = int(time.time())
        headers = standard_webhooks_headers(PLAIN, MSG_ID, timestamp, BODY)
        receiver_secret = base64.b64encode(PLAIN.encode()).decode()
        Webhook(receiver_secret).verify(BODY, headers, json_parse=False)

    def test_reference_library_rejects_tampered_body(self) -> None:
        """The reference library rejects our headers when the body changed."""
        headers = standard_webhooks_headers(WHSEC, MSG_ID, int(time.time()), BODY)
        with pytest.raises(WebhookVerificationError):
            Webhook(WHSEC).verify(BODY.replace(b"Caf", b"Bar"), headers)

    def test_reference_signature_verifies_with_us(self) -> None:
        """Headers signed by the reference library pass our verifier."""
        timestamp = datetime.fromtimestamp(NOW, tz=timezone.utc)
        signature = Webhook(WHSEC).sign(MSG_ID, timestamp, BODY.decode())
        headers = {
            "Webhook-Id": MSG_ID,
            "Webhook-Timestamp": str(NOW),
            "Webhook-Signature": signature,
        }
        verify_standard_webhook(WHSEC, headers, BODY, now=NOW)


class TestVerifyStandardWebhook:
    """Receiver-side Standard Webhooks verification."""

    def headers(self, secret: str = WHSEC, timestamp: int = NOW) -> dict[str, str]:
        return standard_webhooks_headers(secret, MSG_ID, timestamp, BODY)

    def test_valid_request_passes(self) -> None:
        """Headers we produced verify with the same secret."""
        verify_standard_webhook(WHSEC, self.headers(), BODY, now=NOW)

    def test_header_names_are_case_insensitive(self) -> None:
        """Header names are matched regardless of case."""
        headers = {key.upper(): value for key, value in self.headers().items()}
        verify_standard_webhook(WHSEC, headers, BODY, now=NOW)

    def test_defaults_to_current_time(self) -> None:
        """Without now, the current time is used."""
        verify_standard_webhook(WHSEC, self.headers(timestamp=int(time.time())), BODY)

    def test_tampered_body_is_rejected(self) -> None:
        """A body changed after signing matches no signature."""
        with pytest.raises(InvalidSignature, match="no webhook-signature matches"):
            verify_standard_webhook(WHSEC, self.headers(), BODY + b"x", now=NOW)

    def test_tampered_id_is_rejected(self) -> None:
        """The webhook-id is part of the signed content."""
        headers = {**self.headers(), "webhook-id": "msg_other"}
        with pytest.raises(InvalidSignature, match="no webhook-signature matches"):
            verify_standard_webhook(WHSEC, headers, BODY, now=NOW)

    @pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
    def test_missing_header(self, name: str) -> None:
        """Each of the three headers is required and named when missing."""
        headers = self.headers()
        del headers[name]
        with pytest.raises(InvalidSignature, match=f"missing {name}"):
            verify_standard_webhook(WHSEC, headers, BODY, now=NOW)

    @pytest.mark.parametrize("value", ["1700000000.5", "abc", "-5", "1_700_000_000"])
    def test_non_integer_timestamp(self, value: str) -> None:
        """A timestamp that is not a plain integer is refused."""
        headers = {**self.headers(), "webhook-timestamp": value}
        with pytest.raises(InvalidSignature, match="not an integer"):
            verify_standard_webhook(WHSEC, headers, BODY, now=NOW)

    def test_stale_timestamp(self) -> None:
        """A timestamp older than the tolerance is refused even with a valid signature."""
        with pytest.raises(InvalidSignature, match="too old"):
            verify_standard_webhook(WHSEC, self.headers(), BODY, now=NOW + 301)

    def test_future_timestamp(self) -> None:
        """A timestamp further ahead than the tolerance is refused."""
        with pytest.raises(InvalidSignature, match="future"):
            verify_standard_webhook(WHSEC, self.headers(), BODY, now=NOW - 301)

    def test_tolerance_boundary_and_custom_tolerance(self) -> None:
        """Exactly the tolerance is accepted, and the tolerance can be changed."""
        verify_standard_webhook(WHSEC, self.headers(), BODY, now=NOW + 300)
        verify_standard_webhook(WHSEC, self.headers(), BODY, now=NOW - 300)
        with pytest.raises(InvalidSignature, match="too old"):
            verify_standard_webhook(WHSEC, self.headers(), BODY, now=NOW + 11, tolerance=10)

    def test_signature_list_with_other_versions(self) -> None:
        """Unknown versions and malformed entries are skipped; a later v1 match counts."""
        good = self.headers()["webhook-signature"]
        headers = {**self.headers(), "webhook-signature": f"v1a,xyz v1,@@@ v1,AAAA {good}"}
        verify_standard_webhook(WHSEC, headers, BODY, now=NOW)

    def test_no_v1_signature(self) -> None:
        """A header with no usable v1 signature is reported as such."""
        headers = {**self.headers(), "webhook-signature": "v1a,abc garbage"}
        with pytest.raises(InvalidSignature, match="no well-formed 'v1,"):
            verify_standard_webhook(WHSEC, headers, BODY, now=NOW)

    def test_rotation_accepts_any_secret(self) -> None:
        """With several secrets, headers signed with any of them verify."""
        new = generate_secret()
        verify_standard_webhook([new, PLAIN], self.headers(secret=PLAIN), BODY, now=NOW)
        verify_standard_webhook([new, PLAIN], self.headers(secret=new), BODY, now=NOW)

    def test_rotation_rejects_unknown_secret(self) -> None:
        """With several secrets, headers signed with another secret fail."""
        with pytest.raises(InvalidSignature):
            verify_standard_webhook([generate_secret(), PLAIN], self.headers(), BODY, now=NOW)

    def test_non_str_secret_is_config_error(self) -> None:
        """Standard Webhooks secrets must be str."""
        with pytest.raises(ImproperlyConfigured, match="must be str"):
            verify_standard_webhook([b"raw"], self.headers(), BODY, now=NOW)  # type: ignore[list-item]

    def test_bool_variant(self) -> None:
        """is_valid_standard_webhook answers True for good headers and False otherwise."""
        assert is_valid_standard_webhook(WHSEC, self.headers(), BODY, now=NOW)
        assert not is_valid_standard_webhook(WHSEC, self.headers(), BODY, now=NOW + 1000)
        assert not is_valid_standard_webhook(WHSEC, {}, BODY, now=NOW)


class TestGenerateSecret:
    """Random secret generation."""

    def test_format_and_length(self) -> None:
        """A secret is whsec_ followed by base64 of 24 random bytes by default."""
        secret = generate_secret()
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[len("whsec_") :], validate=True)) == 24

    def test_custom_length(self) -> None:
        """nbytes sets the number of random bytes."""
        assert len(standard_webhooks_key(generate_secret(48))) == 48

    def test_too_short_is_refused(self) -> None:
        """Fewer than 24 bytes is refused."""
        with pytest.raises(ValueError, match="at least 24"):
            generate_secret(16)

    def test_unique(self) -> None:
        """Secrets do not repeat."""
        assert len({generate_secret() for _ in range(200)}) == 200

    def test_round_trips_through_reference_library(self) -> None:
        """A generated secret signs headers the reference library verifies."""
        secret = generate_secret()
        headers = standard_webhooks_headers(secret, MSG_ID, int(time.time()), BODY)
        Webhook(secret).verify(BODY, headers, json_parse=False)


def upper_signer(digest_method: str, secret: str | bytes, message: bytes) -> str:
    """A custom signer used by the load_signer tests."""
    return "custom:" + hook_hmac(digest_method, secret, message)


@pytest.fixture
def signer_module(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register a throwaway module holding a signer and a non-callable attribute."""
    module = types.ModuleType("thorn_test_signers")
    module.sign = upper_signer  # type: ignore[attr-defined]
    module.NOT_CALLABLE = 42  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module.__name__


class TestLoadSigner:
    """Resolving THORN_HMAC_SIGNER."""

    def test_callable_passes_through(self) -> None:
        """A callable is returned unchanged."""
        assert load_signer(upper_signer) is upper_signer

    def test_import_string(self, signer_module: str) -> None:
        """'module:function' imports the function."""
        signer = load_signer(f"{signer_module}:sign")
        assert signer is upper_signer
        assert signer("sha256", PLAIN, BODY) == "custom:" + hook_hmac("sha256", PLAIN, BODY)

    def test_default_signer_by_name(self) -> None:
        """The built-in signer can be named by its import string."""
        assert load_signer("thorn_core.signing:hook_hmac") is hook_hmac

    def test_missing_module(self) -> None:
        """A module that cannot be imported is a configuration error naming it."""
        with pytest.raises(ImproperlyConfigured, match="cannot import module 'no_such_mod_xyz'"):
            load_signer("no_such_mod_xyz:sign")

    def test_missing_attribute(self, signer_module: str) -> None:
        """A missing attribute is a configuration error naming it."""
        with pytest.raises(ImproperlyConfigured, match="no attribute 'nope'"):
            load_signer(f"{signer_module}:nope")

    def test_not_callable(self, signer_module: str) -> None:
        """An attribute that is not callable is refused."""
        with pytest.raises(ImproperlyConfigured, match="not callable"):
            load_signer(f"{signer_module}:NOT_CALLABLE")

    @pytest.mark.parametrize("spec", ["thorn_core.signing.hook_hmac", ":hook_hmac", "mod:"])
    def test_malformed_spec(self, spec: str) -> None:
        """A string without 'module:name' form is refused."""
        with pytest.raises(ImproperlyConfigured, match=r"must be 'package\.module:name'"):
            load_signer(spec)

    def test_wrong_type(self) -> None:
        """Something neither a string nor callable is refused."""
        with pytest.raises(ImproperlyConfigured, match="must be a callable"):
            load_signer(42)  # type: ignore[arg-type]
