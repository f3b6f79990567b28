"""Subscribers: who receives which events; the static source built from ``THORN_SUBSCRIBERS``."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from . import ed25519
from .codecs import JSON_CONTENT_TYPE
from .encryption import plain_secret
from .exceptions import ImproperlyConfigured, InvalidSubscriber, ThornError
from .patterns import candidate_patterns, validate_pattern
from .payload_filters import subscriber_filter
from .secretset import SecretSet, SubscriberSecret, utcnow
from .secretset import previous_secrets as _previous_secrets
from .signing import DIGESTS, generate_secret, normalize_digest, standard_webhooks_key
from .telemetry import get_logger
from .validators import display_url, parse_target

__all__ = [
    "DeactivatingSource",
    "StaticSubscribers",
    "Subscriber",
    "SubscriberSource",
    "accepts_sender",
    "digest_problem",
    "secret_problem",
    "sender_key",
    "stored_subscriber",
    "subscriber_from_row",
    "subscribers_from",
    "subscribers_from_rows",
]

_logger = get_logger(__name__)

#: Namespace of the stable uuids given to static subscribers that name none.
_STATIC_NAMESPACE = uuid.UUID("5b0f0a4e-4d0e-4c1b-9a57-3f0c8c1e7a11")


def _to_uuid(value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            raise InvalidSubscriber(f"Subscriber uuid {value!r} is not a UUID") from None
    raise InvalidSubscriber(f"Subscriber uuid must be a UUID or string, got {type(value).__name__}")


def _check_url(_: object, __: attrs.Attribute[Any], value: object) -> None:
    parse_target(value)


def _check_pattern(_: object, __: attrs.Attribute[Any], value: object) -> None:
    validate_pattern(value)


def digest_problem(value: object) -> str | None:
    """Why ``value`` is not an HMAC digest Thorn signs with (in any case), or None when it is
    one (shared by :class:`Subscriber` and
    :func:`~thorn_core.subscriptions.check_subscription`)."""
    if normalize_digest(value) is None:
        return f"{value!r} is not supported; choose one of {', '.join(sorted(DIGESTS))}"
    return None


def _digest_name(value: object) -> object:
    """A digest name in Thorn's spelling (``'SHA512'`` -> ``'sha512'``); anything else as
    given, for the validator to name."""
    return normalize_digest(value) or value


def secret_problem(value: object) -> str | None:
    """Why ``value`` is not a usable secret (a non-empty string; a ``whsec_`` one must carry
    valid base64, a ``whsk_`` ed25519 key 32 bytes of it and ``cryptography``), or None."""
    if not isinstance(value, str) or not value:
        return "the secret must be a non-empty string"
    if ed25519.is_public_key(value):
        return "a 'whpk_' public key only verifies; give the subscriber its 'whsk_' signing key"
    if ed25519.is_signing_key(value):
        return ed25519.signing_key_problem(value)
    try:
        standard_webhooks_key(value)
    except ImproperlyConfigured as exc:
        return str(exc)
    return None


def _check_digest(_: object, __: attrs.Attribute[Any], value: object) -> None:
    problem = digest_problem(value)
    if problem is not None:
        raise InvalidSubscriber(f"hmac_digest {problem}")


def _check_secret(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:  # worded for the field, not as the API's
        raise InvalidSubscriber("hmac_secret must be a non-empty string")
    problem = secret_problem(value)
    if problem is not None:
        # Caught here, a bad secret cannot stop the deliveries of other subscribers later.
        raise InvalidSubscriber(f"hmac_secret is unusable: {problem}")


def _check_previous(
    _: object, __: attrs.Attribute[Any], value: tuple[SubscriberSecret, ...]
) -> None:
    for item in value:
        problem = secret_problem(item.secret)
        if problem is not None:
            raise InvalidSubscriber(f"a previous secret is unusable: {problem}")


def _check_content_type(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or value.count("/") != 1 or any(c.isspace() for c in value):
        raise InvalidSubscriber(
            f"content_type {value!r} is not a media type such as {JSON_CONTENT_TYPE!r}"
        )


def _check_rate_limit(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
    ):
        raise InvalidSubscriber(f"rate_limit must be a positive number or None, got {value!r}")


def _check_max_in_flight(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidSubscriber(f"max_in_flight must be a whole number >= 1 or None, got {value!r}")


def _check_endpoint(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (
        not isinstance(value, str) or not value or any(c.isspace() for c in value)
    ):
        raise InvalidSubscriber(f"endpoint must be a non-empty name without spaces, got {value!r}")


def _check_active(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidSubscriber(f"active must be True or False, got {value!r}")


def _check_filter(subscriber: Any, _: attrs.Attribute[Any], value: object) -> None:
    if value is not None:  # InvalidPayloadFilter (an InvalidSubscriber) names the path
        subscriber_filter(subscriber.uuid, value)


def _check_version(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (
        not isinstance(value, str) or not value or any(c.isspace() for c in value)
    ):
        raise InvalidSubscriber(f"version must be a version name such as '2', got {value!r}")


@attrs.frozen(kw_only=True)
class Subscriber:
    """One subscription: deliver events matching ``event`` to ``url``, signed with ``hmac_secret``.

    ``user`` is the owner's identifier: a subscriber with a user receives only the events sent
    with that user as sender; one without receives every matching event.
    """

    url: str = attrs.field(validator=_check_url, repr=lambda url: repr(display_url(url)))
    event: str = attrs.field(default="*", validator=_check_pattern)
    uuid: uuid.UUID = attrs.field(factory=uuid.uuid4, converter=_to_uuid)
    user: Any = None
    hmac_secret: str = attrs.field(factory=generate_secret, validator=_check_secret, repr=False)
    hmac_digest: str = attrs.field(
        default="sha256", converter=_digest_name, validator=_check_digest
    )
    content_type: str = attrs.field(default=JSON_CONTENT_TYPE, validator=_check_content_type)
    active: bool = attrs.field(default=True, validator=_check_active)
    #: Deliveries per second to this subscriber's endpoint at most (shared by the
    #: subscriptions of the endpoint); None: ``THORN_RATE_LIMIT``.
    rate_limit: float | None = attrs.field(default=None, validator=_check_rate_limit)
    #: Deliveries to the endpoint in progress at once at most; None: ``THORN_MAX_IN_FLIGHT``.
    max_in_flight: int | None = attrs.field(default=None, validator=_check_max_in_flight)
    #: The endpoint whose health this subscription shares (:func:`thorn_core.health.
    #: endpoint_key`); None: its URL's origin.
    endpoint: str | None = attrs.field(default=None, validator=_check_endpoint)
    #: A payload filter (:mod:`thorn_core.payload_filters`): only the sends whose payload
    #: satisfies it are delivered; None delivers every matching send.
    filter: Mapping[str, Any] | None = attrs.field(
        default=None, validator=_check_filter, hash=False
    )
    #: A version pin: only the sends of this version of the event type are delivered
    #: (:func:`thorn_core.targeting.send_version`); None delivers every version.
    version: str | None = attrs.field(default=None, validator=_check_version)
    #: Older secrets kept until their expiry during a rotation (newest first); see
    #: :func:`thorn_core.rotation.rotate_secret`. ``hmac_secret`` is always the current one.
    previous_secrets: tuple[SubscriberSecret, ...] = attrs.field(
        default=(), converter=_previous_secrets, validator=_check_previous, repr=False
    )

    @property
    def secrets(self) -> SecretSet:
        """Every secret of the subscriber: ``hmac_secret`` (current), then the older ones."""
        return SecretSet(self.hmac_secret, self.previous_secrets)

    def live_secrets(self, now: datetime.datetime | None = None) -> tuple[str, ...]:
        """The secrets deliveries are signed with at ``now``, newest first (expired ignored)."""
        if not self.previous_secrets:
            return (self.hmac_secret,)
        moment = now or utcnow()
        return (self.hmac_secret, *(s.secret for s in self.previous_secrets if s.is_live(moment)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, event: str | None = None) -> Subscriber:
        """Build a subscriber from a mapping with at least ``url``.

        A mapping without ``uuid`` gets one derived from its event and URL, so the same static
        subscriber has the same ``Hook-Subscription`` in every process.

        Raises:
            InvalidSubscriber: for an unknown key, a missing URL, or an invalid field.
        """
        if not isinstance(data, Mapping):
            raise InvalidSubscriber(f"A subscriber must be a mapping, got {type(data).__name__}")
        fields = {a.name for a in attrs.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise InvalidSubscriber(
                f"Unknown subscriber field(s): {', '.join(sorted(map(str, unknown)))}"
            )
        if "url" not in data:
            raise InvalidSubscriber("A subscriber needs a 'url'")
        values = dict(data)
        if event is not None and values.setdefault("event", event) != event:
            raise InvalidSubscriber(
                f"A subscriber listed under {event!r} says its event is {values['event']!r}"
            )
        if "uuid" not in values:
            values["uuid"] = uuid.uuid5(
                _STATIC_NAMESPACE, f"{values.get('event', '*')} {values['url']}"
            )
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The subscriber as a JSON-friendly dict, the inverse of :meth:`from_dict`."""
        data = attrs.asdict(self, filter=lambda a, _: a.name != "previous_secrets")
        data["uuid"] = str(self.uuid)
        for name in ("filter", "version"):
            if data[name] is None:  # absent when unset: what a Thorn without them reads
                del data[name]
        if self.previous_secrets:  # absent when empty: what a Thorn without rotation reads
            data["previous_secrets"] = [s.as_dict() for s in self.previous_secrets]
        return data


def subscriber_from_row(row: Any) -> Subscriber:
    """The subscriber of a database row with the fields of :class:`Subscriber` (an adapter's
    model); ``user`` is its ``user_id`` (None without one).

    Raises:
        InvalidSubscriber: the row holds an invalid URL, pattern or field.
        SecretDecryptionError: its secret is encrypted with none of ``THORN_SECRET_KEYS``.
    """
    return Subscriber(
        url=row.url,
        event=row.event,
        uuid=row.uuid,
        user=getattr(row, "user_id", None),
        hmac_secret=plain_secret(row.hmac_secret, row.uuid),
        hmac_digest=row.hmac_digest,
        content_type=row.content_type,
        active=bool(row.active),
        rate_limit=getattr(row, "rate_limit", None),
        max_in_flight=getattr(row, "max_in_flight", None),
        endpoint=getattr(row, "endpoint", None) or None,
        filter=getattr(row, "filter", None),
        version=getattr(row, "version", None),
        previous_secrets=plain_secret(getattr(row, "previous_secrets", None), row.uuid) or (),
    )


def subscribers_from_rows(
    rows: Iterable[Any], convert: Callable[[Any], Subscriber] = subscriber_from_row
) -> list[Subscriber]:
    """The subscribers of stored ``rows``; a row that is no valid subscriber (written
    without validation: a malformed pattern or URL, an unknown digest, an unusable secret)
    is skipped with a warning naming its uuid and the reason, so it never stops the
    deliveries of the others. Adapters' sources use it.
    """
    found = (stored_subscriber(row, convert) for row in rows)
    return [subscriber for subscriber in found if subscriber is not None]


def stored_subscriber(
    row: Any, convert: Callable[[Any], Subscriber] = subscriber_from_row
) -> Subscriber | None:
    """The subscriber of one stored ``row`` (None stays None); a row that is no valid
    subscriber is None too, with the warning of :func:`subscribers_from_rows`."""
    if row is None:
        return None
    try:
        return convert(row)
    except (ThornError, ValueError, TypeError) as exc:
        _logger.warning("Skipping stored subscriber %s: %s", getattr(row, "uuid", "(no uuid)"), exc)
        return None


@runtime_checkable
class SubscriberSource(Protocol):
    """Where subscribers come from. Adapters implement it over their ORM model.

    ``matching`` must answer with a lookup by :func:`~thorn_core.patterns.candidate_patterns`
    (one indexed ``event IN (...)`` query), never by scanning every subscriber, and must apply
    :func:`accepts_sender` (or the equivalent query) for owned subscribers.
    """

    def matching(
        self, event: str, sender: Any = None, context: Mapping[str, Any] | None = None
    ) -> Iterable[Subscriber]:
        """Return the active subscribers for event name ``event`` sent by ``sender``."""
        ...


@runtime_checkable
class DeactivatingSource(Protocol):
    """A subscriber source that can deactivate a subscription (stored ones persist it)."""

    def deactivate(self, subscriber: Subscriber, reason: str) -> bool:
        """Deactivate ``subscriber`` if this source holds it; return whether it did."""
        ...


def sender_key(sender: object) -> Any:
    """The identifier compared with a subscriber's ``user``: an id, or an object's ``pk``/``id``."""
    if sender is None or isinstance(sender, (str, int, uuid.UUID)):
        return sender
    for attribute in ("pk", "id"):
        value = getattr(sender, attribute, None)
        if value is not None:
            return value
    return sender


def accepts_sender(subscriber: Subscriber, key: Any) -> bool:
    """Whether ``subscriber`` may receive an event whose sender has identifier ``key``."""
    if subscriber.user is None:
        return True
    if key is None:
        return False
    return subscriber.user == key or str(subscriber.user) == str(key)


def subscribers_from(value: object, event: str) -> list[Subscriber]:
    """Normalise one ``THORN_SUBSCRIBERS`` value (URL, dict, Subscriber, or a list of them).

    Raises:
        InvalidSubscriber: for a value of any other kind.
    """
    if isinstance(value, Subscriber):
        return [value]
    if isinstance(value, str):
        return [Subscriber.from_dict({"url": value}, event=event)]
    if isinstance(value, Mapping):
        return [Subscriber.from_dict(value, event=event)]
    if isinstance(value, Iterable):
        result: list[Subscriber] = []
        for item in value:
            if _is_function(item):
                raise InvalidSubscriber(
                    f"Subscribers for {event!r}: a callable ({item!r}) is accepted only in "
                    "THORN_SUBSCRIBERS, next to URLs or alone; elsewhere call it and pass what "
                    "it returns"
                )
            if isinstance(item, (list, tuple)):
                raise InvalidSubscriber(
                    f"Subscribers for {event!r}: nested {type(item).__name__} is not allowed"
                )
            result.extend(subscribers_from(item, event))
        return result
    hint = (
        "; for a stored row pass row.as_subscriber()"
        if callable(getattr(value, "as_subscriber", None))
        else ""
    )
    raise InvalidSubscriber(
        f"Subscribers for {event!r} must be a URL, a dict, a Subscriber or a list of them, "
        f"got {type(value).__name__}{hint}"
    )


def _is_function(value: object) -> bool:
    """Whether a ``THORN_SUBSCRIBERS`` value is a callable returning subscribers (a class,
    such as :class:`Subscriber` itself, is not one)."""
    return callable(value) and not isinstance(value, type)


SubscriberCallable = Callable[..., Any]
#: Event names whose routes a :class:`StaticSubscribers` remembers.
_ROUTES_KEPT = 4096


@attrs.define
class StaticSubscribers:
    """The subscribers of ``THORN_SUBSCRIBERS`` (or any pattern mapping), indexed by pattern.

    Values are URLs, dicts, callables ``(event, sender=None, **context)`` returning more, or
    lists mixing them (as Thorn 1.x took); callables are called on every send of a matching
    event.
    """

    _fixed: dict[str, tuple[Subscriber, ...]] = attrs.field(factory=dict, alias="_fixed")
    _callables: dict[str, tuple[SubscriberCallable, ...]] = attrs.field(
        factory=dict, alias="_callables"
    )
    _deactivated: set[uuid.UUID] = attrs.field(factory=set, init=False)
    #: Per event name, the patterns that have subscribers: most names have none.
    _routes: dict[str, tuple[str, ...]] = attrs.field(
        factory=dict, init=False, repr=False, eq=False
    )

    @classmethod
    def from_setting(cls, mapping: Mapping[str, Any] | None) -> StaticSubscribers:
        """Index a ``THORN_SUBSCRIBERS`` mapping of event pattern -> subscribers.

        Raises:
            ImproperlyConfigured: naming the pattern whose value is invalid.
        """
        fixed: dict[str, tuple[Subscriber, ...]] = {}
        callables: dict[str, tuple[SubscriberCallable, ...]] = {}
        for pattern, value in (mapping or {}).items():
            try:
                validate_pattern(pattern)
                if _is_function(value):
                    callables[pattern] = (value,)
                elif isinstance(value, (list, tuple)) and any(map(_is_function, value)):
                    callables[pattern] = tuple(filter(_is_function, value))
                    others = [item for item in value if not _is_function(item)]
                    if others:
                        fixed[pattern] = tuple(subscribers_from(others, pattern))
                else:
                    fixed[pattern] = tuple(subscribers_from(value, pattern))
            except ValueError as exc:
                raise ImproperlyConfigured(f"THORN_SUBSCRIBERS[{pattern!r}]: {exc}") from exc
        return cls(_fixed=fixed, _callables=callables)

    def __bool__(self) -> bool:
        return bool(self._fixed or self._callables)

    def listed(self) -> list[Subscriber]:
        """Every fixed static subscriber (not those callables return), e.g. for
        ``thorn endpoints``."""
        return [subscriber for fixed in self._fixed.values() for subscriber in fixed]

    def get(self, uuid_: str | uuid.UUID) -> Subscriber | None:
        """A fixed static subscriber by uuid (callable ones cannot be looked up); one
        deactivated in this process comes back with ``active=False``."""
        wanted = _to_uuid(uuid_)
        for fixed in self._fixed.values():
            for subscriber in fixed:
                if subscriber.uuid == wanted:
                    if wanted in self._deactivated:
                        return attrs.evolve(subscriber, active=False)
                    return subscriber
        return None

    def reactivate(self, subscriber: Subscriber) -> bool:
        """Deliver to a static subscriber deactivated in this process again."""
        if subscriber.uuid in self._deactivated:
            self._deactivated.discard(subscriber.uuid)
            return True
        return False

    def deactivate(self, subscriber: Subscriber, reason: str) -> bool:
        """Stop delivering to a static subscriber in this process (until the app is rebuilt).

        Returns False when it was off already, so the signal fires once per deactivation.
        """
        if subscriber.uuid in self._deactivated:
            return False
        known = any(subscriber in fixed for fixed in self._fixed.values())
        if known or self._callables:
            self._deactivated.add(subscriber.uuid)
        return known

    def matching(
        self, event: str, sender: Any = None, context: Mapping[str, Any] | None = None
    ) -> list[Subscriber]:
        """Return the active subscribers whose pattern matches ``event``, for ``sender``, in
        a new list."""
        try:
            routes = self._routes.get(event)
        except TypeError:  # unhashable: _route names the problem
            routes = None
        if routes is None:
            routes = self._route(event)
        if not routes:
            return []
        found: list[Subscriber] = []
        key = sender_key(sender)
        for pattern in routes:
            fixed = self._fixed.get(pattern)
            if fixed:
                found.extend(
                    s
                    for s in fixed
                    if s.active and accepts_sender(s, key) and s.uuid not in self._deactivated
                )
            for function in self._callables.get(pattern, ()):
                produced = function(event, sender=sender, **(context or {}))
                if produced is None:
                    continue
                found.extend(
                    s
                    for s in subscribers_from(produced, pattern)
                    if s.active and accepts_sender(s, key) and s.uuid not in self._deactivated
                )
        return found

    def _route(self, event: str) -> tuple[str, ...]:
        """The candidate patterns of ``event`` that have subscribers, remembered (at most
        ``_ROUTES_KEPT`` names: model events can format names per instance).

        Raises:
            InvalidEventName: ``event`` is not a valid event name.
        """
        routes = tuple(
            pattern
            for pattern in candidate_patterns(event)
            if pattern in self._fixed or pattern in self._callables
        )
        if len(self._routes) >= _ROUTES_KEPT:
            self._routes.clear()
        self._routes[event] = routes
        return routes
