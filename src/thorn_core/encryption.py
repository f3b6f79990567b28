"""Subscriber secrets encrypted at rest with ``THORN_SECRET_KEYS`` (Fernet keys, newest first).

Adapters call :func:`encrypt_stored` before a secret goes into a column and
:func:`decrypt_stored` after it comes out; ``cryptography`` is imported only when keys are
set. Decryptions are cached per process, so reading the same row again costs a dict lookup.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

from .exceptions import ImproperlyConfigured, InvalidSecretKey, SecretDecryptionError

__all__ = [
    "ENCRYPTED_PREFIX",
    "SecretCipher",
    "UnreadableSecret",
    "cipher_for",
    "decrypt_stored",
    "encrypt_stored",
    "is_encrypted",
    "normalize_keys",
    "plain_secret",
]

#: What an encrypted column value starts with; the Fernet token follows.
ENCRYPTED_PREFIX = "fernet:"

#: Decryptions kept per cipher (one per stored secret: thousands of subscribers fit).
_CACHE_SIZE = 65536


class UnreadableSecret(str):
    """A stored value that none of the keys decrypts: the ciphertext as stored, so that saving
    the row again writes it back unchanged; the adapters' converters turn it into
    :class:`~thorn_core.exceptions.SecretDecryptionError` naming the subscriber."""

    __slots__ = ("problem",)

    problem: str

    def __new__(cls, stored: str, problem: str) -> UnreadableSecret:
        self = super().__new__(cls, stored)
        self.problem = problem
        return self


def normalize_keys(value: object) -> tuple[str, ...]:
    """``THORN_SECRET_KEYS`` as a tuple: None or empty is no encryption, a str is one key.

    Raises:
        InvalidSecretKey: a key that is not text (its position is named, never its value).
    """
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, (str, bytes)) else value
    if not isinstance(items, Sequence):
        raise InvalidSecretKey(
            f"THORN_SECRET_KEYS must be a list of Fernet keys, got {type(value).__name__}"
        )
    keys: list[str] = []
    for position, key in enumerate(items):
        if isinstance(key, bytes):
            key = key.decode("ascii", "replace")
        if not isinstance(key, str) or not key:
            raise InvalidSecretKey(f"THORN_SECRET_KEYS[{position}] is not a Fernet key (text)")
        keys.append(key)
    return tuple(keys)


class SecretCipher:
    """Encrypts with the newest key, decrypts with any (``MultiFernet``); caches decryptions."""

    def __init__(self, keys: Sequence[str]) -> None:
        """Build the cipher.

        Raises:
            InvalidSecretKey: a key is not a url-safe base64 32-byte Fernet key.
            ImproperlyConfigured: ``cryptography`` is not installed.
        """
        try:
            from cryptography.fernet import Fernet, InvalidToken, MultiFernet
        except ImportError as exc:  # pragma: no cover - cryptography is a dependency of the extra
            raise ImproperlyConfigured(
                "THORN_SECRET_KEYS needs the 'cryptography' package: "
                "pip install 'thorn-webhooks[ed25519]' (or cryptography itself)"
            ) from exc
        if not keys:
            raise InvalidSecretKey("THORN_SECRET_KEYS is empty")
        fernets = []
        for position, key in enumerate(keys):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise InvalidSecretKey(
                    f"THORN_SECRET_KEYS[{position}] is not a Fernet key (url-safe base64 of 32 "
                    "bytes; make one with cryptography.fernet.Fernet.generate_key())"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._newest = fernets[0]
        self._invalid: type[Exception] = InvalidToken
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()

    def encrypt(self, secret: str) -> str:
        """The stored form of ``secret``: :data:`ENCRYPTED_PREFIX` + a token of the newest key."""
        return ENCRYPTED_PREFIX + self._newest.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str, subscriber: object = "(unknown)") -> str:
        """The secret of an encrypted column value (cached).

        Raises:
            SecretDecryptionError: no key decrypts it; names ``subscriber`` only.
        """
        found = self._cache.get(stored)
        if found is not None:
            return found
        token = stored[len(ENCRYPTED_PREFIX) :].encode("ascii", "replace")
        try:
            secret = self._fernet.decrypt(token).decode("utf-8")
        except (self._invalid, UnicodeDecodeError):
            raise SecretDecryptionError(subscriber) from None
        with self._lock:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[stored] = secret
        return secret

    def needs_rewrite(self, stored: str) -> bool:
        """Whether ``stored`` is plain text or a token of an older key (reencrypt rewrites it)."""
        if not is_encrypted(stored):
            return True
        token = stored[len(ENCRYPTED_PREFIX) :].encode("ascii", "replace")
        try:
            self._newest.decrypt(token)
        except self._invalid:
            return True
        return False


@functools.lru_cache(maxsize=8)
def cipher_for(keys: tuple[str, ...]) -> SecretCipher:
    """The process's one cipher for these keys (its cache lives as long as the process)."""
    return SecretCipher(keys)


def is_encrypted(stored: object) -> bool:
    """Whether a column value is encrypted (else it is a secret stored in clear)."""
    return isinstance(stored, str) and stored.startswith(ENCRYPTED_PREFIX)


def encrypt_stored(value: Any, keys: tuple[str, ...]) -> Any:
    """The column value for ``value``: encrypted with the newest key when keys are set.

    Already encrypted values, unreadable ones and empty text are stored as they are.
    """
    if not keys or not isinstance(value, str) or not value or is_encrypted(value):
        return value
    return cipher_for(keys).encrypt(value)


def decrypt_stored(value: Any, keys: tuple[str, ...]) -> Any:
    """The secret of a column value; an encrypted one that cannot be read (no key set, or
    none matches) becomes an :class:`UnreadableSecret`, for the converter to report."""
    if not is_encrypted(value) or isinstance(value, UnreadableSecret):
        return value
    if not keys:
        return UnreadableSecret(value, "THORN_SECRET_KEYS is not set")
    try:
        return cipher_for(keys).decrypt(value)
    except SecretDecryptionError:
        return UnreadableSecret(value, "no key matches")


def plain_secret(value: Any, subscriber: object) -> Any:
    """``value`` as read from a column, refusing an :class:`UnreadableSecret`.

    Raises:
        SecretDecryptionError: the value could not be decrypted; names ``subscriber``.
    """
    if isinstance(value, UnreadableSecret):
        raise SecretDecryptionError(subscriber, value.problem)
    return value
