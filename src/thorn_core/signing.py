"""Signing of deliveries (Hook-HMAC, Standard Webhooks ``v1`` HMAC and ``v1a`` ed25519) and
receiver-side verification."""

from __future__ import annotations

import base64
import binascii
import hmac
import importlib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeAlias

from thorn_core import ed25519
from thorn_core.exceptions import ImproperlyConfigured, InvalidSignature

__all__ = [
    "DIGESTS",
    "SCHEMES",
    "SECRET_PREFIX",
    "Signer",
    "generate_secret",
    "hook_hmac",
    "hook_hmac_secret",
    "is_asymmetric_key",
    "is_hmac_secret",
    "is_valid_hook_hmac",
    "is_valid_standard_webhook",
    "load_signer",
    "new_secret_like",
    "normalize_digest",
    "signature_entry",
    "standard_webhooks_headers",
    "standard_webhooks_key",
    "standard_webhooks_signature",
    "verification_key_problem",
    "verify_hook_hmac",
    "verify_standard_webhook",
    "webhook_signature",
]

#: Digest names accepted for ``Hook-HMAC`` (``hashlib`` names).
DIGESTS: frozenset[str] = frozenset({"sha1", "sha224", "sha256", "sha384", "sha512"})

#: Prefix of secrets in the Standard Webhooks format: ``whsec_`` + base64 of the key.
SECRET_PREFIX = "whsec_"  # noqa: S105  # a format marker, not a password

#: The signature schemes ``THORN_SIGNATURE`` chooses from for new secrets.
SCHEMES: tuple[str, ...] = ("hmac", "ed25519")

#: ``(digest_method, secret, message) -> signature``: the contract of ``THORN_HMAC_SIGNER``.
Signer: TypeAlias = Callable[[str, str | bytes, bytes], str]

_MIN_SECRET_BYTES = 24
_SIGNATURE_VERSION = "v1"
_TIMESTAMP_RE = re.compile(r"[0-9]+")


def _configured_scheme() -> str:
    """``THORN_SIGNATURE`` of the configured app, "hmac" when none is configured."""
    from .app import configured_app

    try:
        return configured_app().settings.signature
    except ImproperlyConfigured:
        return "hmac"


def generate_secret(nbytes: int = _MIN_SECRET_BYTES, *, scheme: str | None = None) -> str:
    """Return a new random subscriber secret of ``scheme``: for "hmac", ``whsec_`` + base64
    of ``nbytes`` random bytes (the format Standard Webhooks libraries accept as is); for
    "ed25519", a ``whsk_`` signing key (:func:`thorn_core.ed25519.generate_signing_key`).

    ``scheme=None`` follows ``THORN_SIGNATURE`` of the configured app (HMAC without one), so
    the model defaults and APIs make the kind of secret the site chose.

    Raises:
        ValueError: if ``nbytes`` is below 24 (192 bits).
        ImproperlyConfigured: if ``scheme`` is not one of :data:`SCHEMES`.
    """
    if scheme is None:
        scheme = _configured_scheme()
    if scheme not in SCHEMES:
        raise ImproperlyConfigured(
            f"unknown signature scheme {scheme!r}; use one of {', '.join(SCHEMES)}"
        )
    if scheme == "ed25519":
        return ed25519.generate_signing_key()
    if nbytes < _MIN_SECRET_BYTES:
        raise ValueError(f"a webhook secret needs at least {_MIN_SECRET_BYTES} bytes, got {nbytes}")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def _hook_hmac_key(secret: str | bytes) -> bytes:
    """Return the HMAC key for ``Hook-HMAC``: the secret exactly as stored, UTF-8 encoded."""
    return secret if isinstance(secret, bytes) else secret.encode("utf-8")


def normalize_digest(value: object) -> str | None:
    """The name of :data:`DIGESTS` that ``value`` spells in any case (``'SHA512'`` ->
    ``'sha512'``, as Thorn 1.x stored them), or None when it names no supported digest.

    The one place digest names are read: subscribers, signing and verification use it.
    """
    if not isinstance(value, str):
        return None
    name = value.lower()
    return name if name in DIGESTS else None


def _check_digest(digest_method: str) -> str:
    name = normalize_digest(digest_method)
    if name is None:
        raise ImproperlyConfigured(
            f"unknown HMAC digest {digest_method!r}; use one of {', '.join(sorted(DIGESTS))}"
        )
    return name


def _hook_hmac_digest(digest_method: str, secret: str | bytes, message: bytes) -> bytes:
    return hmac.digest(_hook_hmac_key(secret), message, _check_digest(digest_method))


def hook_hmac(digest_method: str, secret: str | bytes, message: bytes) -> str:
    """Return the ``Hook-HMAC`` header value: base64 of HMAC(secret, message).

    The key is the whole secret as stored (a ``whsec_`` prefix included), UTF-8 encoded.
    This is the default ``THORN_HMAC_SIGNER``; a custom signer takes the same arguments.

    Raises:
        ImproperlyConfigured: if ``digest_method`` is not one of :data:`DIGESTS`.
    """
    return base64.b64encode(_hook_hmac_digest(digest_method, secret, message)).decode("ascii")


def _import_string(spec: str, *, what: str) -> object:
    """Import ``"package.module:attr"`` (``attr`` may be dotted) and return the object.

    Raises:
        ImproperlyConfigured: if the spec is malformed or names nothing importable.
    """
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ImproperlyConfigured(f"{what} must be 'package.module:name', got {spec!r}")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"{what} {spec!r}: cannot import module {module_name!r}: {exc}"
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImproperlyConfigured(
                f"{what} {spec!r}: {module_name!r} has no attribute {attr_path!r}"
            ) from None
    return obj


def load_signer(spec: str | Signer) -> Signer:
    """Resolve ``THORN_HMAC_SIGNER``: a callable is returned as is, a string is imported.

    Args:
        spec: a callable ``(digest_method, secret, message) -> str`` or ``"module:function"``.

    Raises:
        ImproperlyConfigured: if the string cannot be imported or does not name a callable.
    """
    if isinstance(spec, str):
        obj = _import_string(spec, what="THORN_HMAC_SIGNER")
        if not callable(obj):
            raise ImproperlyConfigured(
                f"THORN_HMAC_SIGNER {spec!r} is not callable (got {type(obj).__name__})"
            )
        return obj
    if callable(spec):
        return spec
    raise ImproperlyConfigured(
        f"THORN_HMAC_SIGNER must be a callable or 'module:function', got {type(spec).__name__}"
    )


def standard_webhooks_key(secret: str) -> bytes:
    """Return the Standard Webhooks HMAC key for ``secret``.

    A ``whsec_<base64>`` secret gives the decoded bytes, as the reference libraries do.
    Any other secret gives its UTF-8 bytes, so a receiver verifies with ``base64(secret)``.

    Raises:
        ImproperlyConfigured: if a ``whsec_`` secret is not valid base64 or is empty.
    """
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode("utf-8")
    encoded = secret[len(SECRET_PREFIX) :]
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(
            "a secret starting with 'whsec_' must continue with base64; "
            "this one does not (see thorn_core.signing.generate_secret)"
        ) from None
    if not key:
        raise ImproperlyConfigured("a 'whsec_' secret must not be empty")
    return key


def _standard_webhooks_digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.digest(key, signed, "sha256")


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` value: ``v1,`` + base64 of HMAC-SHA256.

    The signed content is ``"{msg_id}.{timestamp}."`` followed by the body bytes.

    Raises:
        ImproperlyConfigured: if the secret is a malformed ``whsec_`` secret.
    """
    digest = _standard_webhooks_digest(standard_webhooks_key(secret), msg_id, timestamp, body)
    return f"{_SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def is_hmac_secret(secret: str) -> bool:
    """Whether ``secret`` signs with HMAC (anything but a ``whsk_`` ed25519 signing key)."""
    return not ed25519.is_signing_key(secret)


def new_secret_like(secret: str) -> str:
    """A fresh secret of the same kind as ``secret``, for a rotation."""
    return generate_secret(scheme="hmac" if is_hmac_secret(secret) else "ed25519")


def signature_entry(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the one ``webhook-signature`` entry that ``secret`` makes: ``v1,…`` (HMAC), or
    ``v1a,…`` (ed25519) for a ``whsk_`` signing key.

    Raises:
        ImproperlyConfigured: if the secret is malformed (or ed25519 lacks ``cryptography``).
    """
    if not is_hmac_secret(secret):
        return ed25519.sign(secret, msg_id, timestamp, body)
    return standard_webhooks_signature(secret, msg_id, timestamp, body)


def webhook_signature(
    secrets: str | Iterable[str], msg_id: str, timestamp: int, body: bytes
) -> str:
    """Return the ``webhook-signature`` value: one entry per live secret, space-separated,
    as the spec has it during a rotation (receivers accept any one that matches).

    Raises:
        ImproperlyConfigured: if no secret is given or one is malformed.
    """
    found = [secrets] if isinstance(secrets, str) else list(secrets)
    if not found:
        raise ImproperlyConfigured("no webhook secret to sign with")
    return " ".join(signature_entry(secret, msg_id, timestamp, body) for secret in found)


def hook_hmac_secret(secrets: str | Iterable[str]) -> str | None:
    """The secret ``Hook-HMAC`` is computed with: the first (newest) HMAC one of ``secrets``,
    or None when every one is an ed25519 key."""
    found = [secrets] if isinstance(secrets, str) else secrets
    return next((secret for secret in found if is_hmac_secret(secret)), None)


def standard_webhooks_headers(
    secret: str | Iterable[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Return the Standard Webhooks headers: ``webhook-id``, ``-timestamp``, ``-signature``.

    ``secret`` may be the live secrets of a rotation, newest first: one signature each.
    """
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature(secret, msg_id, timestamp, body),
    }


def _hook_secrets(secret: str | bytes | Iterable[str | bytes]) -> list[str | bytes]:
    """Return one secret or several (rotation) as a non-empty list."""
    found = [secret] if isinstance(secret, (str, bytes)) else list(secret)
    if not found:
        raise ImproperlyConfigured("no webhook secret given to verify against")
    return found


def is_asymmetric_key(key: str) -> bool:
    """Whether ``key`` verifies ``v1a`` (ed25519) signatures: a ``whpk_`` public key, or a
    ``whsk_`` signing key (its public half); any other secret verifies ``v1`` (HMAC)."""
    return ed25519.is_public_key(key) or ed25519.is_signing_key(key)


def _standard_webhooks_keys(secret: str | Iterable[str]) -> tuple[list[bytes], list[str]]:
    """Return the HMAC keys and the ed25519 keys of one secret or several; at least one.

    Raises:
        ImproperlyConfigured: none is given, or one is malformed.
    """
    found = [secret] if isinstance(secret, str) else list(secret)
    if not found:
        raise ImproperlyConfigured("no webhook secret given to verify against")
    for item in found:
        if not isinstance(item, str):
            raise ImproperlyConfigured(
                f"Standard Webhooks secrets must be str, got {type(item).__name__}"
            )
    keys = [item for item in found if is_asymmetric_key(item)]
    for key in keys:
        verification_key_problem(key, strict=True)
    return [standard_webhooks_key(item) for item in found if not is_asymmetric_key(item)], keys


def verification_key_problem(key: str, *, strict: bool = False) -> str | None:
    """Why ``key`` cannot verify signatures (a malformed ``whsec_``, ``whsk_`` or ``whpk_``
    key, or ed25519 without ``cryptography``), or None when it can.

    Raises:
        ImproperlyConfigured: instead of returning the problem, with ``strict=True``.
    """
    try:
        if is_asymmetric_key(key):
            ed25519.check_key(key)
        else:
            standard_webhooks_key(key)
    except ImproperlyConfigured as exc:
        if strict:
            raise
        return str(exc)
    return None


def verify_hook_hmac(
    secret: str | bytes | Iterable[str | bytes],
    body: bytes,
    signature: str | None,
    digest_method: str = "sha256",
) -> None:
    """Check a received ``Hook-HMAC`` header against the raw request body.

    Args:
        secret: the subscription's secret, or several while rotating (any may match).
        body: the request body exactly as received, before any parsing.
        signature: the ``Hook-HMAC`` header value (``None`` if absent).
        digest_method: the subscription's digest, one of :data:`DIGESTS`.

    Raises:
        InvalidSignature: if the header is missing, is not base64 of the digest's size,
            or matches none of the secrets.
        ImproperlyConfigured: if the digest is unknown or no secret is given.
    """
    _check_digest(digest_method)
    candidates = _hook_secrets(secret)
    if not signature or not signature.strip():
        raise InvalidSignature("missing Hook-HMAC signature")
    try:
        received = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature("malformed Hook-HMAC signature: not base64") from None
    expected = [_hook_hmac_digest(digest_method, s, body) for s in candidates]
    if len(received) != len(expected[0]):
        raise InvalidSignature(
            f"malformed Hook-HMAC signature: {len(received)} bytes, "
            f"expected {len(expected[0])} for {digest_method}"
        )
    # Compare against every secret so the time taken does not reveal which one matched.
    matched = False
    for digest in expected:
        matched |= hmac.compare_digest(digest, received)
    if not matched:
        raise InvalidSignature("Hook-HMAC signature does not match the body")


def is_valid_hook_hmac(
    secret: str | bytes | Iterable[str | bytes],
    body: bytes,
    signature: str | None,
    digest_method: str = "sha256",
) -> bool:
    """Return whether :func:`verify_hook_hmac` accepts the signature (config errors still raise)."""
    try:
        verify_hook_hmac(secret, body, signature, digest_method)
    except InvalidSignature:
        return False
    return True


def _header(headers: Mapping[str, str], name: str) -> str:
    """Return a header by case-insensitive name, raising if it is absent or empty."""
    value = headers.get(name)
    if value is None:
        lowered = {key.lower(): val for key, val in headers.items()}
        value = lowered.get(name)
    if value is None or not value.strip():
        raise InvalidSignature(f"missing {name} header")
    return value.strip()


def _received_signatures(header: str, wanted: str = _SIGNATURE_VERSION) -> list[bytes]:
    """Return the decoded signatures of one version (``v1`` or ``v1a``) of a space-separated
    ``webhook-signature``."""
    found = []
    for entry in header.split():
        version, sep, encoded = entry.partition(",")
        if not sep or version != wanted:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify_standard_webhook(
    secret: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> None:
    """Check Standard Webhooks headers against the raw request body.

    Args:
        secret: the subscription's secret, or several while rotating (any may match). A
            ``whpk_`` ed25519 public key verifies the ``v1a`` entries.
        headers: the request headers; names are looked up case-insensitively.
        body: the request body exactly as received, before any parsing.
        tolerance: how many seconds the timestamp may be off, in either direction.
        now: the current Unix time (defaults to ``time.time()``).

    Raises:
        InvalidSignature: if a header is missing, the timestamp is not an integer or is
            outside the tolerance, or no ``v1`` (``v1a``) signature matches any secret (key).
        ImproperlyConfigured: if no secret is given, a ``whsec_``/``whsk_``/``whpk_`` key is
            malformed, or a public key is given without ``cryptography``.
    """
    keys, public_keys = _standard_webhooks_keys(secret)
    msg_id = _header(headers, "webhook-id")
    raw_timestamp = _header(headers, "webhook-timestamp")
    signature_header = _header(headers, "webhook-signature")

    if not _TIMESTAMP_RE.fullmatch(raw_timestamp):
        raise InvalidSignature(f"webhook-timestamp is not an integer: {raw_timestamp!r}")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if current - timestamp > tolerance:
        raise InvalidSignature(
            f"webhook-timestamp is too old ({current - timestamp:.0f}s > {tolerance:g}s)"
        )
    if timestamp - current > tolerance:
        raise InvalidSignature(
            f"webhook-timestamp is too far in the future ({timestamp - current:.0f}s > "
            f"{tolerance:g}s)"
        )

    received = _received_signatures(signature_header) if keys else []
    received_v1a = (
        _received_signatures(signature_header, ed25519.SIGNATURE_VERSION) if public_keys else []
    )
    if not received and not received_v1a:
        wanted = " or ".join(
            f"'{version},<base64>'"
            for version, wanted_keys in (
                (_SIGNATURE_VERSION, keys),
                (ed25519.SIGNATURE_VERSION, public_keys),
            )
            if wanted_keys
        )
        raise InvalidSignature(f"webhook-signature holds no well-formed {wanted} signature")
    matched = False
    for key in keys:
        expected = _standard_webhooks_digest(key, msg_id, timestamp, body)
        for candidate in received:
            matched |= hmac.compare_digest(expected, candidate)
    if received_v1a:
        matched |= ed25519.verify_signatures(public_keys, received_v1a, msg_id, timestamp, body)
    if not matched:
        raise InvalidSignature("no webhook-signature matches the body")


def is_valid_standard_webhook(
    secret: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Return whether :func:`verify_standard_webhook` accepts the request."""
    try:
        verify_standard_webhook(secret, headers, body, tolerance=tolerance, now=now)
    except InvalidSignature:
        return False
    return True
