"""The Thorn app: settings, dispatcher, subscriber sources, codecs, signer and validators."""

from __future__ import annotations

import datetime
import importlib.util
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from . import signals
from .binding import BlinkerBinding, ModelBinding
from .catalog import Catalog, EventType
from .codecs import JSON_CONTENT_TYPE, Codec, build_codecs
from .delivery import Delivery, DeliveryRequest, deliver
from .dispatchers import Dispatcher, DispatcherFactory, resolve
from .exceptions import ImproperlyConfigured, SerializationError
from .health import MemoryHealthStore, is_deferred
from .log import DeliveryLog, FailureStreak, MemoryDeliveryLog, attempt_record, utcnow
from .message import EventMessage
from .settings import Settings
from .signing import _import_string, load_signer
from .subscribers import DeactivatingSource, StaticSubscribers, Subscriber, SubscriberSource
from .telemetry import Telemetry, TelemetryConfig, get_logger
from .telemetry import build as build_telemetry
from .validators import (
    RecipientCache,
    Resolver,
    ValidatorSet,
    compile_validators,
    default_validators,
    load_validators,
    system_resolver,
)

if TYPE_CHECKING:
    from .buffer import EventBuffer
    from .events import Event
    from .health import HealthStore
    from .outbox import Outbox
    from .results import SendResult
    from .transport import Transport

__all__ = ["Thorn", "add_app_lookup", "configured_app", "current_app", "remove_app_lookup"]

logger = get_logger(__name__)


def _load_log(value: Any) -> DeliveryLog:
    """The delivery log of ``THORN_DELIVERY_LOG``: None (in memory), an object, a class (or a
    path to one) made with no arguments, or a path to an object.

    Raises:
        ImproperlyConfigured: a path that cannot be imported, a class that cannot be made
            without arguments, or an object that is no log.
    """
    if value is None:
        return MemoryDeliveryLog()
    if isinstance(value, str):
        value = _import_string(value, what="THORN_DELIVERY_LOG")
    if isinstance(value, type):
        # A class is a protocol match too (it has the methods), so it is made here: given
        # as is, every delivery would fail on its unbound methods.
        try:
            value = value()
        except Exception as exc:
            raise ImproperlyConfigured(
                f"THORN_DELIVERY_LOG {value.__qualname__} cannot be created without arguments: "
                f"{exc}; give an instance instead"
            ) from exc
    if not isinstance(value, DeliveryLog):
        raise ImproperlyConfigured(f"THORN_DELIVERY_LOG {value!r} is not a delivery log")
    return value


#: The settings a health store is built from; it is rebuilt when one of them changes.
_HEALTH_SETTINGS = (
    "health_url",
    "dispatcher",
    "celery_app",
    "circuit_window",
    "circuit_min_requests",
    "circuit_failure_rate",
    "circuit_cooloff",
    "circuit_cooloff_max",
    "slow_threshold",
    "event_timeout",
)


def _health_settings(settings: Settings) -> tuple[Any, ...]:
    return tuple(getattr(settings, name) for name in _HEALTH_SETTINGS)


def _build_health(settings: Settings, dispatcher_factory: Any) -> HealthStore:
    """The store of ``app.health`` (see :attr:`Thorn.health`).

    A ``celery`` dispatcher on a broker that is not Redis, without ``THORN_HEALTH_URL``,
    gets the in-memory store and a warning: each worker then keeps its own health.
    """
    url = settings.health_url
    if url is None and getattr(dispatcher_factory, "__module__", "").startswith(
        "thorn_core.dispatchers.celery"
    ):
        from .dispatchers.celery import celery_app_for

        broker = str(celery_app_for(settings).conf.broker_write_url or "")
        if broker.startswith(("redis://", "rediss://", "unix://")):
            url = broker
        else:
            logger.warning(
                "Endpoint health is kept in each process's memory: the Celery broker is not "
                "Redis and THORN_HEALTH_URL is not set, so circuits, rate limits and failure "
                "streaks are not shared between workers"
            )
    if url is None:
        return MemoryHealthStore(settings)
    from .health_redis import RedisHealthStore

    return RedisHealthStore(url, settings)


_current_lock = threading.RLock()
_current: Thorn | None = None
#: The app :func:`current_app` built because none was configured (:func:`configured_app`
#: refuses it).
_implicit: Thorn | None = None
#: Callables asked first by :func:`current_app` (see :func:`add_app_lookup`).
_lookups: tuple[Callable[[], Thorn | None], ...] = ()


def add_app_lookup(lookup: Callable[[], Thorn | None]) -> None:
    """Let ``lookup()`` name the current app first; it returns None to defer to the default.

    Adapters with per-application state use it: ``thorn_flask`` answers with the app of
    the active Flask application context. Adding the same lookup twice adds it once.
    """
    global _lookups
    with _current_lock:
        if lookup not in _lookups:
            _lookups = (*_lookups, lookup)


def remove_app_lookup(lookup: Callable[[], Thorn | None]) -> None:
    """Undo :func:`add_app_lookup`."""
    global _lookups
    with _current_lock:
        _lookups = tuple(known for known in _lookups if known != lookup)


def current_app() -> Thorn:
    """The current app: a lookup's answer, else the newest one built with ``set_as_current=True``.

    Without either, a default app (every setting at its default) is built: convenient in a
    script. Code that must not run with settings nobody chose (a Celery worker's tasks) uses
    :func:`configured_app` instead.
    """
    global _implicit
    for lookup in _lookups:
        found = lookup()
        if found is not None:
            return found
    app = _current
    if app is None:
        with _current_lock:
            if _current is None:
                _implicit = Thorn()
            app = _current
    assert app is not None
    return app


def configured_app(what: str = "this code") -> Thorn:
    """The current app, when one was configured: a lookup's answer (the Flask app of the
    active application context) or an app built with ``set_as_current=True``.

    Never builds a default app, and refuses the one :func:`current_app` built implicitly:
    a worker task running with it would deliver with settings nobody chose, or report
    success and deliver nothing.

    Raises:
        ImproperlyConfigured: no app was configured, naming ``what`` and the fixes.
    """
    for lookup in _lookups:
        found = lookup()
        if found is not None:
            return found
    app = _current
    if app is None or app is _implicit:
        raise ImproperlyConfigured(
            f"{what} needs a configured Thorn app, and this process has none: build "
            "Thorn({...THORN_* settings...}) at start-up (it becomes the current app; "
            "set_as_current=True), in the module that creates your Celery app "
            "(THORN_CELERY_APP names that app); with Flask, run the task inside "
            "app.app_context() (a Celery Task subclass that pushes it); with Django, add "
            "'thorn_django' to INSTALLED_APPS and let Celery's Django fix-up run django.setup()"
        )
    return app


class _Buffers(threading.local):
    """Each thread's innermost open buffer (a class default: no lookup miss per send)."""

    buffer: EventBuffer | None = None


class Thorn:
    """One webhook configuration: build it from a mapping of ``THORN_*`` settings.

    The newest app is the current one (used by events created without ``app=``) unless
    ``set_as_current=False``. Configuration errors (an unknown dispatcher, a bad setting,
    a signer or codec that cannot be loaded) raise here, at start-up.

    Args:
        settings: a mapping with ``THORN_*`` keys (Django settings, Flask config, a dict),
            or a :class:`Settings`.
        set_as_current: make this the current app.
        resolver: how host names are resolved before validation (tests inject one).
        binding: how model events reach the ORM (hooks, after-commit, URL reversing);
            adapters pass theirs. The generic :class:`~thorn_core.binding.BlinkerBinding`
            by default.
    """

    def __init__(
        self,
        settings: Mapping[str, Any] | Settings | None = None,
        *,
        set_as_current: bool = True,
        resolver: Resolver | None = None,
        binding: ModelBinding | None = None,
    ) -> None:
        self.resolver: Resolver = resolver or system_resolver
        self.binding: ModelBinding = binding if binding is not None else BlinkerBinding()
        self._sources: list[SubscriberSource] = []
        self._dispatcher: Dispatcher | None = None
        self._dispatcher_lock = threading.Lock()
        self._health: HealthStore | None = None
        self._buffers = _Buffers()
        #: Where events go inside a transaction when ``THORN_OUTBOX`` is on (an adapter's).
        self.outbox: Outbox | None = None
        #: The declared event types (:meth:`event_type`, ``THORN_EVENT_TYPES``).
        self.catalog = Catalog(self)
        #: Debug mode (Django's ``DEBUG``, Flask's ``app.debug``; adapters set it): payloads
        #: that break their schema raise unless ``THORN_VALIDATE_PAYLOADS`` says otherwise.
        self.debug = False
        self.configure(settings)
        if set_as_current:
            self.set_current()

    def configure(self, settings: Mapping[str, Any] | Settings | None) -> None:
        """Apply new settings (as on Django's ``setting_changed``); the dispatcher is rebuilt.

        The delivery log is rebuilt only when ``THORN_DELIVERY_LOG`` changes.
        """
        new = settings if isinstance(settings, Settings) else Settings.from_mapping(settings)
        dispatcher_factory = resolve(new.dispatcher)
        # A dispatcher class may check its configuration now rather than at the first event.
        check = getattr(dispatcher_factory, "check", None)
        if callable(check):
            check(new)
        codecs = build_codecs(new.codecs)
        signer = load_signer(new.hmac_signer)
        validators = (
            default_validators()
            if new.recipient_validators is None
            else load_validators(new.recipient_validators)
        )
        static = StaticSubscribers.from_setting(new.subscribers)
        if new.health_url is not None and importlib.util.find_spec("redis") is None:
            raise ImproperlyConfigured(
                "THORN_HEALTH_URL needs the redis package: pip install 'thorn-webhooks[celery]' "
                "(or redis)"
            )
        telemetry_config = TelemetryConfig.from_settings(new)
        self.catalog.configure(new.event_types or ())
        previous: Settings | None = getattr(self, "settings", None)
        if previous is not None and new.delivery_log == previous.delivery_log:
            # THORN_DELIVERY_LOG is unchanged: keep the log in use, which may be one an
            # adapter installed (the Flask extension's, in the app's database), and what
            # an in-memory log holds.
            delivery_log = self.delivery_log
        else:
            delivery_log = _load_log(new.delivery_log)
        old = self._dispatcher
        self.settings = new
        self._dispatcher_factory: DispatcherFactory = dispatcher_factory
        self.codecs: dict[str, Codec] = codecs
        json_codec = codecs.get(JSON_CONTENT_TYPE)
        #: How :meth:`validate_payload` checks: the JSON codec's ``check``, else its encoder.
        self._check_payload: Callable[[Any], object] | None = (
            None if json_codec is None else getattr(json_codec, "check", None) or json_codec.encode
        )
        self.signer = signer
        self.validators: ValidatorSet = compile_validators(validators)
        #: Approved recipients, kept for ``THORN_DNS_CACHE_TTL`` seconds.
        self.recipients = RecipientCache(new.dns_cache_ttl, self.resolver)
        self.static_subscribers = static
        #: Every delivery attempt (``THORN_DELIVERY_LOG``).
        self.delivery_log: DeliveryLog = delivery_log
        self._telemetry_config = telemetry_config
        self._telemetry: Telemetry | None = None
        self._dispatcher = None
        if old is not None:
            old.close()
        if previous is None or _health_settings(previous) != _health_settings(new):
            old_health, self._health = self._health, None
            if old_health is not None:
                old_health.close()

    @property
    def health(self) -> HealthStore:
        """The endpoint health store, made on first use: Redis at ``THORN_HEALTH_URL``, else
        at the Celery broker's URL when that is Redis, else in this process's memory."""
        health = self._health
        if health is None:
            with self._dispatcher_lock:
                if self._health is None:
                    self._health = _build_health(self.settings, self._dispatcher_factory)
                health = self._health
        return health

    def set_current(self) -> None:
        """Make this app the one that events without ``app=`` use."""
        global _current
        with _current_lock:
            _current = self

    @property
    def telemetry(self) -> Telemetry:
        """Spans and metrics of this app (a no-op without OpenTelemetry), made on first use."""
        telemetry = self._telemetry
        if telemetry is None:
            telemetry = self._telemetry = build_telemetry(self._telemetry_config, self)
        return telemetry

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher instance, created on first use."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            with self._dispatcher_lock:
                if self._dispatcher is None:
                    self._dispatcher = self._dispatcher_factory(self)
                dispatcher = self._dispatcher
        return dispatcher

    def add_subscriber_source(self, source: SubscriberSource) -> None:
        """Add a source of stored subscribers (adapters add their ORM model's)."""
        if source not in self._sources:
            self._sources.append(source)

    def remove_subscriber_source(self, source: SubscriberSource) -> None:
        """Remove a source added with :meth:`add_subscriber_source`."""
        if source in self._sources:
            self._sources.remove(source)

    def subscribers_for(
        self, event: str, sender: Any = None, context: Mapping[str, Any] | None = None
    ) -> list[Subscriber]:
        """The subscribers of every source (static first) matching ``event`` for ``sender``,
        in a new list."""
        found = self.static_subscribers.matching(event, sender, context)  # a new list
        for source in self._sources:
            found.extend(source.matching(event, sender, context))
        return found

    def deactivate_subscriber(
        self, subscriber: Subscriber, reason: str, *, delivery: Any = None
    ) -> bool:
        """Deactivate ``subscriber`` in every source that holds it and signal it.

        Returns whether a source deactivated it (the signal fires only then). A static
        subscriber stays off for the life of this app's configuration; a stored one as long
        as its store keeps it so.
        """
        done = False
        for source in (self.static_subscribers, *self._sources):
            if isinstance(source, DeactivatingSource) and source.deactivate(subscriber, reason):
                done = True
        if done:
            self.telemetry.disabled(subscriber, delivery)
        if done and signals.subscriber_deactivated.receivers:
            signals.subscriber_deactivated.send(
                self, subscriber=subscriber, reason=reason, delivery=delivery
            )
        return done

    def after_delivery(self, delivery: Delivery, *, next_retry_in: float | None = None) -> None:
        """Log an attempt and switch off a subscriber that keeps failing.

        A subscriber is deactivated after ``THORN_FAILURE_LIMIT`` consecutive failed attempts
        spanning at least ``THORN_FAILURE_WINDOW`` seconds. Never raises: the log is not
        allowed to stop a delivery (a failure to log is itself logged).
        """
        self.telemetry.delivered(delivery, next_retry_in)
        try:
            streak = self.delivery_log.record(attempt_record(delivery, next_retry_in=next_retry_in))
        except Exception:
            logger.exception("Logging delivery %s failed", delivery.id)
            return
        if is_deferred(delivery):
            return  # not an attempt: neither a failure nor a success of the receiver
        uuid = str(delivery.subscriber.uuid)
        limit = self.settings.failure_limit
        if isinstance(self.delivery_log, MemoryDeliveryLog):
            # This process's log sees this process's attempts only: the health store (Redis
            # for Celery workers) counts the attempts of every process. A database log does.
            try:
                count = self.health.record_streak(uuid, ok=delivery.ok)
                started = None if not limit or count < limit else self.health.streak_since(uuid)
            except Exception:
                logger.exception("Counting the failure streak of %s failed", uuid)
                return
            since = (
                None
                if started is None
                else datetime.datetime.fromtimestamp(started, datetime.timezone.utc)
            )
            streak = FailureStreak(count, since)
        if delivery.ok or not limit or streak.count < limit or streak.since is None:
            return
        span = (utcnow() - streak.since).total_seconds()
        if span < self.settings.failure_window:
            return
        reason = (
            f"{streak.count} consecutive failed deliveries since {streak.since:%Y-%m-%d %H:%M} UTC"
        )
        try:
            if self.deactivate_subscriber(delivery.subscriber, reason, delivery=delivery):
                self.delivery_log.reset_streak(uuid)
                self.health.reset_streak(uuid)
        except Exception:
            logger.exception("Deactivating failing subscriber %s failed", uuid)

    def reactivate_subscriber(self, subscriber: Subscriber) -> bool:
        """Turn a deactivated subscription back on and forget its failures.

        Returns whether a source held it. Sources that can (static subscribers, the
        adapters' stores) implement ``reactivate(subscriber)``.
        """
        done = False
        for source in (self.static_subscribers, *self._sources):
            reactivate = getattr(source, "reactivate", None)
            if reactivate is not None and reactivate(subscriber):
                done = True
        self.delivery_log.reset_streak(str(subscriber.uuid))
        self.health.reset_streak(str(subscriber.uuid))
        return done

    def find_subscriber(self, uuid: str) -> Subscriber | None:
        """A subscriber by uuid from the sources that can look one up (``get(uuid)``)."""
        for source in (self.static_subscribers, *self._sources):
            get = getattr(source, "get", None)
            if get is not None:
                found: Subscriber | None = get(uuid)
                if found is not None:
                    return found
        return None

    def validators_for(self, message: EventMessage) -> ValidatorSet:
        """The recipient validators that apply to a message: its event's, else the app's."""
        if message.recipient_validators is not None:
            return compile_validators(message.recipient_validators)
        return self.validators

    def deliver(
        self,
        request: DeliveryRequest,
        transport: Transport,
        message: EventMessage,
        *,
        attempt: int = 1,
    ) -> Delivery:
        """Deliver one prepared request with this app's validators, limits and recipient cache.

        Dispatchers call this rather than :func:`~thorn_core.delivery.deliver` directly.
        """
        settings = self.settings
        with self.telemetry.attempt(request, attempt) as scope:
            if scope.headers:
                request = attrs.evolve(request, headers={**request.headers, **scope.headers})
            delivery = deliver(
                request,
                transport,
                self.validators_for(message),
                max_body=settings.response_max_bytes,
                attempt=attempt,
                max_redirects=settings.max_redirects if settings.allow_redirects else 0,
                recipients=self.recipients,
            )
            scope.finish(delivery)
        return delivery

    def validate_payload(self, data: Any) -> None:
        """Encode ``data`` as JSON and drop the result, so that bad input fails at ``send()``.

        Raises:
            SerializationError: naming the type that cannot be encoded.
        """
        check = self._check_payload
        if check is None:
            return
        try:
            check(data)
        except SerializationError:
            raise
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"Cannot encode the payload as JSON: {exc}") from exc

    def store(self, message: EventMessage) -> bool:
        """Store ``message`` in the outbox's open transaction (``THORN_OUTBOX``); the relay
        dispatches it after commit. False when not stored: no outbox, the setting off, or
        no transaction open.

        An outbox encodes what it stores (:meth:`EventMessage.to_dict`); a message it does
        not store is encoded here, so bad input fails at ``send()`` either way, encoded once.

        Raises:
            SerializationError: the message cannot be encoded; nothing is stored.
        """
        outbox = self.outbox
        if outbox is None or not self.settings.outbox:
            return False
        if outbox.add(message):
            return True
        message.to_dict()
        return False

    def active_buffer(self) -> EventBuffer | None:
        """The buffer of the innermost ``buffer_events`` block open in this thread, if any."""
        return self._buffers.buffer

    def _set_buffer(self, buffer: EventBuffer | None) -> None:
        self._buffers.buffer = buffer

    def prepare(self, result: SendResult) -> None:
        """Check a sent event at ``send()`` time, buffered or not, so bad input raises there.

        A dispatcher with a ``prepare(result)`` method does its own checks (the ``default``
        one plans every delivery, encoding per content type); for others the payload must
        encode as JSON.

        Raises:
            SerializationError: the payload cannot be encoded; nothing is sent.
        """
        prepare = getattr(self.dispatcher, "prepare", None)
        if prepare is not None:
            prepare(result)
        else:
            self.validate_payload(result.message.data)

    def dispatch(self, results: Sequence[SendResult]) -> None:
        """Hand results to the dispatcher, then signal ``event_sent`` for each."""
        self.dispatcher.dispatch(results)
        if signals.event_sent.receivers:
            for result in results:
                signals.event_sent.send(self, result=result)

    def event_type(
        self,
        name: str,
        *,
        schema: Any = None,
        description: str = "",
        examples: Sequence[Any] = (),
        version: str = "1",
        deprecated: bool = False,
    ) -> EventType:
        """Declare an event type in :attr:`catalog`: its payload schema (JSON Schema draft
        2020-12, or a class one can be derived from), description, examples and version.

        Raises:
            InvalidEventType: a schema that is not JSON Schema, an example that breaks it, or
                another type with this name and version.
        """
        return self.catalog.add(
            EventType(
                name=name,
                version=version,
                schema=schema,
                description=description,
                examples=examples,
                deprecated=deprecated,
            )
        )

    @property
    def validation_mode(self) -> str:
        """``THORN_VALIDATE_PAYLOADS``, or when None: "raise" under the pytest plugin and in
        debug mode, "warn" otherwise."""
        mode = self.settings.validate_payloads
        if mode is not None:
            return mode
        if self.debug or "thorn_core.pytest_plugin" in sys.modules:
            return "raise"
        return "warn"

    def check_payload(self, message: EventMessage, version: str | None = None) -> None:
        """Judge a message's payload against its event type (``THORN_VALIDATE_PAYLOADS``).

        Raises:
            PayloadValidationError: in "raise" mode, when the payload breaks the schema; in
                "warn" mode the problem is logged and the message goes out.
        """
        mode = self.validation_mode
        if mode == "off":
            return
        error = self.catalog.error(message.event, message.data, version)
        if error is None:
            return
        if mode == "raise":
            raise error
        logger.warning("Sending a payload that breaks its schema: %s", error)

    def event(self, name: str, **options: Any) -> Event:
        """An :class:`~thorn_core.Event` bound to this app."""
        from .events import Event

        return Event(name, app=self, **options)

    def close(self) -> None:
        """Close the dispatcher (threads, sessions); the app can still be used afterwards."""
        with self._dispatcher_lock:
            dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.close()
        health = self._health
        if health is not None:
            health.close()

    def __enter__(self) -> Thorn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Thorn dispatcher={self.settings.dispatcher!r}>"
