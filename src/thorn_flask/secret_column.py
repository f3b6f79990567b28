"""Subscriber secrets encrypted at rest with ``THORN_SECRET_KEYS``, in plain ``Text`` columns.

The columns stay ``Text`` (so Alembic autogenerates them with no import of Thorn's); ORM
events of the subscriber mixin encrypt ``hmac_secret`` and ``previous_secrets`` on their way
to the database and decrypt them when rows are loaded, so the attributes always hold the
secrets. Statements that bypass the ORM (``update(...)``) encrypt with :func:`stored`.
"""

from __future__ import annotations

from typing import Any

import flask
from sqlalchemy import event, inspect
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import set_committed_value

from thorn_core.encryption import decrypt_stored, encrypt_stored
from thorn_core.signing import generate_secret
from thorn_core.telemetry import get_logger

__all__ = ["SECRET_COLUMNS", "listen", "secret_keys", "stored", "use_keys", "warn_unencrypted"]

logger = get_logger(__name__)

#: The encrypted columns of a subscriber.
SECRET_COLUMNS = ("hmac_secret", "previous_secrets")

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


def stored(value: Any) -> Any:
    """The column value of a secret: encrypted with the newest key when keys are set."""
    return encrypt_stored(value, secret_keys())


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


def _decrypt(target: Any, *_: Any) -> None:
    """After a load or refresh: the attributes hold the secrets (an unreadable value stays
    as stored, for the converter to report with the subscriber's id)."""
    keys = secret_keys()
    for name in SECRET_COLUMNS:
        value = target.__dict__.get(name)
        if value is not None:
            set_committed_value(target, name, decrypt_stored(value, keys))


def _encrypt(_mapper: Mapper[Any], _connection: Any, target: Any) -> None:
    """Before an INSERT or UPDATE: the secrets that are written go out encrypted."""
    state = inspect(target)
    if target.__dict__.get("hmac_secret") is None and not state.has_identity:
        target.hmac_secret = generate_secret()
    keys = secret_keys()
    pending = {}
    for name in SECRET_COLUMNS:
        value = target.__dict__.get(name)
        if value is not None and (not state.has_identity or state.attrs[name].history.added):
            pending[name] = value
            setattr(target, name, encrypt_stored(value, keys))
    target.__dict__["_thorn_plain_secrets"] = pending


def _restore(_mapper: Mapper[Any], _connection: Any, target: Any) -> None:
    """After the INSERT or UPDATE: the attributes hold the secrets again."""
    for name, value in target.__dict__.pop("_thorn_plain_secrets", {}).items():
        set_committed_value(target, name, value)


def listen(mixin: type) -> None:
    """Encrypt and decrypt the secret columns of every model of ``mixin`` (the mixins call it)."""
    event.listen(mixin, "load", _decrypt, propagate=True)
    event.listen(mixin, "refresh", _decrypt, propagate=True)
    for when, handler in (
        ("before_insert", _encrypt),
        ("before_update", _encrypt),
        ("after_insert", _restore),
        ("after_update", _restore),
    ):
        event.listen(mixin, when, handler, propagate=True)
