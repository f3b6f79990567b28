"""A subscriber's secrets during a rotation: the current one and older ones until they expire."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .exceptions import InvalidSubscriber

__all__ = ["SecretSet", "SubscriberSecret", "previous_secrets", "utcnow"]


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC (what expiries are compared with)."""
    return dt.datetime.now(dt.timezone.utc)


def _to_expiry(value: object) -> dt.datetime | None:
    """An expiry as an aware datetime: ISO 8601 text (a queue's or a column's JSON) is parsed,
    a naive datetime is taken as UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidSubscriber(f"secret expiry {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, dt.datetime):
        raise InvalidSubscriber(
            f"secret expiry must be a datetime or None, got {type(value).__name__}"
        )
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _check_secret_text(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidSubscriber("a subscriber secret must be a non-empty string")


@attrs.frozen
class SubscriberSecret:
    """One secret of a subscriber and when it stops being used (None: it is the current one)."""

    secret: str = attrs.field(validator=_check_secret_text, repr=False)
    expires_at: dt.datetime | None = attrs.field(default=None, converter=_to_expiry)

    def is_live(self, now: dt.datetime | None = None) -> bool:
        """Whether this secret still signs at ``now`` (an expiry is exclusive)."""
        return self.expires_at is None or (now or utcnow()) < self.expires_at

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: the secret and its expiry in ISO 8601 (or None)."""
        expires = None if self.expires_at is None else self.expires_at.isoformat()
        return {"secret": self.secret, "expires_at": expires}

    @classmethod
    def from_value(cls, value: object) -> SubscriberSecret:
        """A secret from itself, a mapping with ``secret`` (and ``expires_at``), or a str.

        Raises:
            InvalidSubscriber: for anything else.
        """
        if isinstance(value, SubscriberSecret):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping) and set(value) <= {"secret", "expires_at"}:
            return cls(value.get("secret"), value.get("expires_at"))  # type: ignore[arg-type]
        raise InvalidSubscriber(
            "a previous secret must be a mapping with 'secret' and 'expires_at', "
            f"got {type(value).__name__}"
        )


def previous_secrets(value: object) -> tuple[SubscriberSecret, ...]:
    """Normalise a subscriber's older secrets: None, JSON text (a column) or an iterable of
    :class:`SubscriberSecret`/mappings.

    Raises:
        InvalidSubscriber: the value is none of these.
    """
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidSubscriber("previous secrets are not JSON") from None
    if isinstance(value, (Mapping, bytes)) or not isinstance(value, Iterable):
        raise InvalidSubscriber(f"previous secrets must be a list, got {type(value).__name__}")
    return tuple(SubscriberSecret.from_value(item) for item in value)


@attrs.frozen
class SecretSet:
    """All secrets of a subscriber, newest first: the current one (no expiry), then older ones
    kept for a grace period so receivers can switch without missing a delivery."""

    current: str = attrs.field(repr=False)
    previous: tuple[SubscriberSecret, ...] = attrs.field(default=(), converter=previous_secrets)

    def live(self, now: dt.datetime | None = None) -> tuple[str, ...]:
        """The secrets that sign at ``now``, newest first; expired ones are ignored."""
        moment = now or utcnow()
        return (self.current, *(s.secret for s in self.previous if s.is_live(moment)))

    def pruned(self, now: dt.datetime | None = None) -> tuple[SubscriberSecret, ...]:
        """The older secrets still live at ``now``: what a write keeps."""
        moment = now or utcnow()
        return tuple(s for s in self.previous if s.is_live(moment))

    def rotated(self, new: str, grace: dt.timedelta, now: dt.datetime | None = None) -> SecretSet:
        """A set whose current secret is ``new``; the old current one lives ``grace`` more,
        expired older ones are dropped (a zero grace drops the old one at once)."""
        moment = now or utcnow()
        kept = self.pruned(moment)
        if grace > dt.timedelta(0):
            kept = (SubscriberSecret(self.current, moment + grace), *kept)
        return SecretSet(new, kept)

    def previous_json(self) -> str:
        """The older secrets as JSON text, the form a database column keeps."""
        return json.dumps([s.as_dict() for s in self.previous])
