"""A SQLAlchemy column type holding a subscriber secret, encrypted with ``THORN_SECRET_KEYS``."""

from __future__ import annotations

import logging
from typing import Any

import flask
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

from thorn_core.encryption import decrypt_stored, encrypt_stored

__all__ = ["EncryptedSecret", "secret_keys", "use_keys", "warn_unencrypted"]

logger = logging.getLogger(__name__)

#: The keys of the app set up last: used where no application context tells which app's.
_fallback: dict[str, tuple[str, ...]] = {"keys": ()}
_warned: set[str] = set()


def use_keys(keys: tuple[str, ...]) -> None:
    """Remember ``keys`` for reads and writes outside an application context (``init_app``)."""
    _fallback["keys"] = keys


def secret_keys() -> tuple[str, ...]:
    """``THORN_SECRET_KEYS`` of the current Flask app (its Thorn settings), else of the app
    set up last (a worker thread without an application context)."""
    if flask.has_app_context():
        state = flask.current_app.extensions.get("thorn")
        core = getattr(state, "core", None)
        if core is not None:
            return tuple(core.settings.secret_keys)
    return _fallback["keys"]


def warn_unencrypted(app_name: str) -> None:
    """Log once per process that stored secrets are in clear (no ``THORN_SECRET_KEYS``)."""
    if "warned" in _warned:
        return
    _warned.add("warned")
    logger.warning(
        "THORN_SECRET_KEYS is not set for %s: subscriber secrets are stored in clear; "
        "set Fernet keys and run 'flask thorn reencrypt' (see docs/security.md)",
        app_name,
    )


class EncryptedSecret(TypeDecorator[str]):
    """Text in Python, ``fernet:<token>`` in the column once keys are set.

    Rows written in clear are read as they are and encrypted when written again; a value no
    key decrypts is kept as stored and reported by the converter with the subscriber's id.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        """Encrypt with the newest key (already encrypted values are written as they are)."""
        return encrypt_stored(value, secret_keys())

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        """Decrypt what the column holds (cached per process)."""
        return decrypt_stored(value, secret_keys())
