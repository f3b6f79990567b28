"""Asymmetric ``v1a`` signatures (Standard Webhooks): ed25519 keys in the ``whsk_``/``whpk_`` form.

A subscriber whose secret is a ``whsk_`` signing key is signed with ed25519; its receiver
verifies with the ``whpk_`` public key and holds nothing that could sign. The keys need the
``cryptography`` package (the ``thorn-webhooks[ed25519]`` extra), imported on first use only.
"""

from __future__ import annotations

import base64
import binascii
import functools
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .exceptions import ImproperlyConfigured, InvalidEd25519Key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "EXTRA",
    "PUBLIC_KEY_PREFIX",
    "SIGNATURE_VERSION",
    "SIGNING_KEY_PREFIX",
    "check_key",
    "generate_keypair",
    "generate_signing_key",
    "is_public_key",
    "is_signing_key",
    "public_key",
    "require_cryptography",
    "sign",
    "signing_key_problem",
    "verify_signatures",
]

#: Prefix of an ed25519 signing key: ``whsk_`` + base64 of its 32-byte seed.
SIGNING_KEY_PREFIX = "whsk_"  # a format marker, not a password
#: Prefix of an ed25519 public key: ``whpk_`` + base64 of its 32 bytes.
PUBLIC_KEY_PREFIX = "whpk_"
#: The ``webhook-signature`` version of an ed25519 signature.
SIGNATURE_VERSION = "v1a"
#: What to install for ed25519 signatures.
EXTRA = "thorn-webhooks[ed25519]"

_KEY_BYTES = 32
_SIGNATURE_BYTES = 64


def is_signing_key(secret: str) -> bool:
    """Whether ``secret`` is an ed25519 signing key (``whsk_``), which signs ``v1a``."""
    return secret.startswith(SIGNING_KEY_PREFIX)


def is_public_key(key: str) -> bool:
    """Whether ``key`` is an ed25519 public key (``whpk_``), which verifies ``v1a``."""
    return key.startswith(PUBLIC_KEY_PREFIX)


def require_cryptography() -> None:
    """Check that ed25519 can be used here (``THORN_SIGNATURE = "ed25519"`` calls it at start-up).

    Raises:
        ImproperlyConfigured: ``cryptography`` is not installed, naming the extra to install.
    """
    _backend()


def _backend() -> tuple[type[Ed25519PrivateKey], type[Ed25519PublicKey]]:
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (
            Ed25519PrivateKey,
            Ed25519PublicKey,
        )
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"ed25519 signatures need the 'cryptography' package: pip install '{EXTRA}' ({exc})"
        ) from None
    return Ed25519PrivateKey, Ed25519PublicKey


def _decode(key: str, prefix: str, what: str) -> bytes:
    """The bytes after ``prefix``: base64 (padding optional) of 32 bytes, else a clear error."""
    encoded = key[len(prefix) :]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEd25519Key(
            f"a{what} starting with {prefix!r} must continue with base64; this one does not"
        ) from None
    if len(raw) != _KEY_BYTES:
        raise InvalidEd25519Key(
            f"a{what} starting with {prefix!r} must hold {_KEY_BYTES} bytes in base64, "
            f"this one holds {len(raw)}"
        )
    return raw


def _seed(secret: str) -> bytes:
    if not is_signing_key(secret):
        raise InvalidEd25519Key(f"an ed25519 signing key starts with {SIGNING_KEY_PREFIX!r}")
    return _decode(secret, SIGNING_KEY_PREFIX, "n ed25519 signing key")


def signing_key_problem(secret: str) -> str | None:
    """Why ``secret`` (a ``whsk_`` key) cannot sign here, or None when it can: malformed, or
    ``cryptography`` missing. Subscribers are checked with it, so a bad key fails at creation."""
    try:
        _seed(secret)
        require_cryptography()
    except ImproperlyConfigured as exc:
        return str(exc)
    return None


def generate_signing_key() -> str:
    """Return a new ed25519 signing key: ``whsk_`` + base64 of 32 random bytes (``secrets``).

    Making one needs no ``cryptography``; signing with it and :func:`public_key` do.
    """
    seed = secrets.token_bytes(_KEY_BYTES)
    return SIGNING_KEY_PREFIX + base64.b64encode(seed).decode("ascii")


@functools.lru_cache(maxsize=1024)
def _private_key(secret: str) -> Ed25519PrivateKey:
    """The key object of a ``whsk_`` key, built once per process (a signature per delivery)."""
    seed = _seed(secret)
    private_cls, _ = _backend()
    return private_cls.from_private_bytes(seed)


@functools.lru_cache(maxsize=1024)
def _public_key(key: str) -> Ed25519PublicKey:
    """The key object of a ``whpk_`` key (or of a ``whsk_`` key's public half)."""
    if is_signing_key(key):
        return _private_key(key).public_key()
    if not is_public_key(key):
        raise InvalidEd25519Key(f"an ed25519 public key starts with {PUBLIC_KEY_PREFIX!r}")
    raw = _decode(key, PUBLIC_KEY_PREFIX, "n ed25519 public key")
    _, public_cls = _backend()
    try:
        return public_cls.from_public_bytes(raw)
    except ValueError as exc:  # pragma: no cover - every 32-byte string is accepted today
        raise InvalidEd25519Key(f"not an ed25519 public key: {exc}") from None


def check_key(key: str) -> None:
    """Check that ``key`` (``whpk_``, or ``whsk_``) can verify ``v1a`` signatures here.

    Raises:
        InvalidEd25519Key: the key is malformed.
        ImproperlyConfigured: ``cryptography`` is not installed.
    """
    _public_key(key)


def public_key(secret: object) -> str | None:
    """The ``whpk_`` public key a receiver verifies ``secret``'s signatures with, or None when
    ``secret`` is an HMAC secret (there is nothing public about it) or no string at all (a
    stored secret that could not be decrypted), as the APIs' ``public_key`` field shows it.

    Raises:
        InvalidEd25519Key: ``secret`` is a malformed ``whsk_`` key.
        ImproperlyConfigured: ``cryptography`` is not installed.
    """
    if not isinstance(secret, str) or not is_signing_key(secret):
        return None
    raw = _private_key(secret).public_key().public_bytes_raw()
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def generate_keypair() -> tuple[str, str]:
    """A new ``(whsk_ signing key, whpk_ public key)`` pair (what ``thorn keys generate`` prints).

    Raises:
        ImproperlyConfigured: ``cryptography`` is not installed.
    """
    secret = generate_signing_key()
    found = public_key(secret)
    assert found is not None
    return secret, found


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` entry ``v1a,<base64>``: ed25519 over
    ``"{msg_id}.{timestamp}."`` followed by the body bytes.

    Raises:
        InvalidEd25519Key: ``secret`` is not a well-formed ``whsk_`` key.
        ImproperlyConfigured: ``cryptography`` is not installed.
    """
    signature = _private_key(secret).sign(_signed_content(msg_id, timestamp, body))
    return f"{SIGNATURE_VERSION},{base64.b64encode(signature).decode('ascii')}"


def verify_signatures(
    keys: Iterable[str], received: Iterable[bytes], msg_id: str, timestamp: int, body: bytes
) -> bool:
    """Whether one of the ``received`` ``v1a`` signatures verifies with one of ``keys``
    (``whpk_`` public keys, or ``whsk_`` keys whose public half is used).

    Every pair is checked, so the time taken does not depend on which one matched.

    Raises:
        InvalidEd25519Key: a key is malformed.
        ImproperlyConfigured: ``cryptography`` is not installed.
    """
    publics = [_public_key(key) for key in keys]  # raises first when cryptography is missing
    from cryptography.exceptions import InvalidSignature as BadSignature

    content = _signed_content(msg_id, timestamp, body)
    signatures = [sig for sig in received if len(sig) == _SIGNATURE_BYTES]
    matched = False
    for key in publics:
        for signature in signatures:
            try:
                key.verify(signature, content)
            except BadSignature:
                continue
            matched = True
    return matched
