"""Secret rotation with a grace period: a new current secret, the old one signs until it expires."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from .exceptions import InvalidRotation
from .secretset import SecretSet, utcnow
from .signing import new_secret_like
from .subscribers import Subscriber, secret_problem
from .telemetry import get_logger

if TYPE_CHECKING:
    from .app import Thorn

__all__ = [
    "DEFAULT_GRACE",
    "MAX_GRACE",
    "SecretStore",
    "current_secrets",
    "grace_from",
    "rotate_secret",
    "rotate_set",
]

_logger = get_logger(__name__)

#: How long the old secret keeps signing by default: a day for receivers to switch.
DEFAULT_GRACE = dt.timedelta(hours=24)
#: The longest grace accepted from an API or a command line (a forgotten old secret is a risk).
MAX_GRACE = dt.timedelta(days=30)


def grace_from(value: object) -> dt.timedelta:
    """A grace period from an API body or a command line: seconds (a number, or its text),
    a timedelta, or None for :data:`DEFAULT_GRACE`.

    Raises:
        InvalidRotation: not a number of seconds, negative, or over :data:`MAX_GRACE`.
    """
    if value is None:
        return DEFAULT_GRACE
    if isinstance(value, dt.timedelta):
        grace = value
    else:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise InvalidRotation(f"grace must be a number of seconds, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise InvalidRotation(f"grace must be a number of seconds, got {value!r}")
        if value < 0:
            raise InvalidRotation(f"grace must not be negative, got {value!r}")
        if value > MAX_GRACE.total_seconds():
            raise InvalidRotation(
                f"grace must be at most {int(MAX_GRACE.total_seconds())} seconds (30 days)"
            )
        grace = dt.timedelta(seconds=value)
    if grace < dt.timedelta(0):
        raise InvalidRotation(f"grace must not be negative, got {grace}")
    if grace > MAX_GRACE:
        raise InvalidRotation(
            f"grace must be at most {int(MAX_GRACE.total_seconds())} seconds (30 days)"
        )
    return grace


@runtime_checkable
class SecretStore(Protocol):
    """Where a stored subscriber's secrets are persisted; the Django and Flask adapters
    implement it over their models (static subscribers have no store)."""

    def save_secrets(self, subscriber: Subscriber, secrets: SecretSet) -> None:
        """Write ``secrets`` (current and older ones, expired already dropped) for
        ``subscriber``, in one transaction.

        Raises:
            InvalidSubscriber: the store does not hold this subscriber.
        """
        ...


def rotate_set(
    secrets: SecretSet,
    grace: dt.timedelta = DEFAULT_GRACE,
    *,
    secret: str | None = None,
    now: dt.datetime | None = None,
) -> SecretSet:
    """``secrets`` with a new current secret; the old current one lives ``grace`` more and
    expired older ones are dropped (what :func:`rotate_secret` writes).

    Raises:
        InvalidRotation: ``grace`` is negative or not a timedelta, or ``secret`` is unusable
            (or equal to the current one).
    """
    if not isinstance(grace, dt.timedelta):
        raise InvalidRotation(f"grace must be a timedelta, got {type(grace).__name__}")
    if grace < dt.timedelta(0):
        raise InvalidRotation(f"grace must not be negative, got {grace}")
    new = new_secret_like(secrets.current) if secret is None else secret
    problem = secret_problem(new)
    if problem is not None:
        raise InvalidRotation(f"the new secret is unusable: {problem}")
    if new == secrets.current:
        raise InvalidRotation("the new secret must differ from the current one")
    return secrets.rotated(new, grace, now or utcnow())


def rotate_secret(
    subscriber: Subscriber,
    grace: dt.timedelta = DEFAULT_GRACE,
    *,
    store: SecretStore | None = None,
    secret: str | None = None,
    now: dt.datetime | None = None,
) -> Subscriber:
    """Give ``subscriber`` a new current secret; the old one keeps signing for ``grace``.

    While both live, each delivery carries one ``webhook-signature`` entry per secret and
    ``Hook-HMAC`` with the new one; expired secrets are dropped here. A static subscriber
    (no ``store``) gets the new value back to put in ``THORN_SUBSCRIBERS``; a stored one is
    written through ``store`` before it is returned.

    Args:
        grace: how long the old secret stays valid; 0 drops it at once.
        store: persists the result (an adapter's subscriber source).
        secret: the new secret; a fresh one of the same kind when None.
        now: the current time (tests); timezone-aware.

    Raises:
        InvalidRotation: ``grace`` is negative or not a timedelta, or ``secret`` is unusable
            (or equal to the current one); nothing is written.
        InvalidSubscriber: the store does not hold the subscriber.
    """
    rotated = rotate_set(subscriber.secrets, grace, secret=secret, now=now)
    result = attrs.evolve(
        subscriber, hmac_secret=rotated.current, previous_secrets=rotated.previous
    )
    if store is not None:
        store.save_secrets(result, rotated)
    return result


def current_secrets(app: Thorn, subscriber: Subscriber) -> Subscriber:
    """``subscriber`` with the secrets its source holds now (a retry queued before a rotation
    signs with the new secret too); as given when no source finds it or the lookup fails."""
    try:
        found = app.find_subscriber(str(subscriber.uuid))
    except Exception:  # a database blip: the secrets the delivery was planned with still sign
        _logger.warning("Cannot read the current secrets of subscriber %s", subscriber.uuid)
        return subscriber
    if found is None or found.secrets == subscriber.secrets:
        return subscriber
    return attrs.evolve(
        subscriber, hmac_secret=found.hmac_secret, previous_secrets=found.previous_secrets
    )
