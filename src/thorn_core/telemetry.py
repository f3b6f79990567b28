"""Telemetry: OpenTelemetry spans and metrics of sends and deliveries, and the structured
fields of Thorn's log records.

The delivery code calls this one module; it calls the OpenTelemetry API when that is
importable (``pip install 'thorn-webhooks[otel]'``) and ``THORN_TELEMETRY`` is on, and does
nothing otherwise. Thorn never imports the SDK: the application configures providers and
exporters (or passes them in ``THORN_TRACER_PROVIDER`` / ``THORN_METER_PROVIDER``). Nothing
here may fail a delivery: an error of a tracer, a meter or an exporter is caught and logged
at most once a minute.

Metric attributes are bounded: an endpoint is a URL origin and an event a name, each capped
at ``THORN_METRICS_ENDPOINT_CAP`` distinct values per process (later ones count as ``other``).
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from ._version import __version__
from .exceptions import ImproperlyConfigured, InvalidURL, RecipientRefused

if TYPE_CHECKING:
    from .app import Thorn
    from .delivery import Delivery, DeliveryRequest
    from .message import EventMessage
    from .results import SendResult
    from .settings import Settings
    from .subscribers import Subscriber

__all__ = [
    "LOG_FIELDS",
    "METRICS",
    "OTHER",
    "OUTCOMES",
    "TASK_HEADER",
    "DeliveryFields",
    "JSONFormatter",
    "Telemetry",
    "TelemetryConfig",
    "delivery_extra",
    "get_logger",
    "log_context",
    "outcome_of",
    "reset_log_context",
    "url_origin",
]

#: What an attempt came to, on spans, metrics and log records. ``retryable``: a later attempt
#: could succeed (timeout, connection error, 408, 429, 5xx); ``refused``: the recipient
#: validators refused the URL; ``deferred``: not attempted now (circuit open, rate limited).
OUTCOMES = ("success", "retryable", "failed", "gone", "refused", "deferred")
#: The label of the values past the cap.
OTHER = "other"
#: The extra fields of every log record Thorn writes (None where they do not apply).
LOG_FIELDS = ("event", "delivery_id", "subscriber", "attempt", "outcome")
#: The Celery message header that carries the trace context from ``send()`` to the worker.
TASK_HEADER = "thorn_trace"
#: Deferral reasons counted by name (``deferred: circuit open`` -> ``circuit_open``).
_DEFERRAL_REASONS = frozenset({"circuit_open", "rate_limited", "max_in_flight", "slow_endpoint"})
#: Seconds between two log records about failing telemetry.
COMPLAINT_INTERVAL = 60.0
#: Latency histogram buckets, in seconds (a webhook answers in milliseconds to seconds).
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Metric name -> (kind, unit, description); the docs and the dashboard test read it.
METRICS: dict[str, tuple[str, str, str]] = {
    "thorn.deliveries": (
        "counter",
        "{attempt}",
        "Delivery attempts (and deliveries not attempted) by event, endpoint and outcome",
    ),
    "thorn.delivery.duration": (
        "histogram",
        "s",
        "Duration of HTTP delivery attempts by endpoint and outcome",
    ),
    "thorn.delivery.retries": ("counter", "{retry}", "Retries scheduled by event and endpoint"),
    "thorn.delivery.deferrals": (
        "counter",
        "{deferral}",
        "Deliveries deferred (circuit open, rate limited...) by endpoint and reason",
    ),
    "thorn.endpoints.disabled": (
        "counter",
        "{subscription}",
        "Subscriptions switched off (410 Gone, failing) by endpoint and reason",
    ),
    "thorn.outbox.backlog": ("gauge", "{event}", "Events in the outbox waiting for the relay"),
    "thorn.outbox.oldest_age": (
        "gauge",
        "s",
        "Age of the oldest event waiting in the outbox (0 when none waits)",
    ),
}

_internal_logger = logging.getLogger(__name__)


# -- log records ----------------------------------------------------------------------

_log_fields: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "thorn_log_fields", default=None
)


class DeliveryFields(logging.Filter):
    """Give every record of a Thorn logger the :data:`LOG_FIELDS` attributes: those passed in
    ``extra``, else the delivery being made in this context, else None."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _log_fields.get()
        fields = record.__dict__
        for name in LOG_FIELDS:
            if name not in fields:
                fields[name] = None if current is None else current.get(name)
        return True


_FILTER = DeliveryFields()


def get_logger(name: str) -> logging.Logger:
    """The logger ``name`` with :class:`DeliveryFields`: every Thorn module logs through one."""
    found = logging.getLogger(name)
    if _FILTER not in found.filters:
        found.addFilter(_FILTER)
    return found


logger = get_logger(__name__)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, Thorn's fields, exception.

    Stdlib only; use it from ``logging.config.dictConfig`` (see docs/observability.md).
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in LOG_FIELDS:
            entry[name] = getattr(record, name, None)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


@functools.lru_cache(maxsize=4096)
def url_origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: no credentials, path or query (a metric label)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return OTHER
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme, 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def outcome_of(delivery: Delivery) -> str:
    """The :data:`OUTCOMES` value of one delivery attempt."""
    if delivery.ok:
        return "success"
    if (delivery.error or "").startswith("deferred: "):
        return "deferred"
    if delivery.gone:
        return "gone"
    if delivery.status_code is None and isinstance(
        delivery.exception, (RecipientRefused, InvalidURL)
    ):
        return "refused"
    return "retryable" if delivery.retryable else "failed"


def delivery_extra(delivery: Delivery, outcome: str | None = None) -> dict[str, Any]:
    """The ``extra`` of a log record about ``delivery`` (the subscriber as its origin)."""
    return {
        "event": delivery.event,
        "delivery_id": delivery.id,
        "subscriber": url_origin(delivery.subscriber.url),
        "attempt": delivery.attempts,
        "outcome": outcome or outcome_of(delivery),
    }


def log_context(delivery: Delivery) -> contextvars.Token[Mapping[str, Any] | None]:
    """Give the log records written until :func:`reset_log_context` the fields of ``delivery``."""
    return _log_fields.set(delivery_extra(delivery))


def reset_log_context(token: contextvars.Token[Mapping[str, Any] | None]) -> None:
    """Undo :func:`log_context`."""
    _log_fields.reset(token)


# -- configuration ---------------------------------------------------------------------


def _provider(value: Any, name: str, method: str) -> Any:
    """A provider setting: None (the global one), an object, or a ``module:attr`` path.

    Raises:
        ImproperlyConfigured: a path that cannot be imported, or an object without ``method``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        module_name, _, attribute = value.partition(":")
        try:
            value = getattr(import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ImproperlyConfigured(f"{name} {value!r} cannot be loaded: {exc}") from exc
    if not callable(getattr(value, method, None)):
        raise ImproperlyConfigured(
            f"{name} must be an OpenTelemetry provider (with {method}()), a 'module:attr' "
            f"path to one, or None; got {value!r}"
        )
    return value


def _receivers(values: Iterable[str]) -> frozenset[str]:
    """``THORN_TRACE_RECEIVERS`` as subscriber uuids and origins.

    Raises:
        ImproperlyConfigured: an entry that is neither a uuid nor an http(s) origin.
    """
    found: set[str] = set()
    for value in values:
        try:
            found.add(str(uuid.UUID(value)))
            continue
        except ValueError:
            pass
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.username
        ):
            raise ImproperlyConfigured(
                f"THORN_TRACE_RECEIVERS: {value!r} is neither a subscriber uuid nor an "
                "origin like 'https://hooks.example.com'"
            )
        found.add(url_origin(value))
    return frozenset(found)


@attrs.frozen(kw_only=True)
class TelemetryConfig:
    """The telemetry settings, checked when the app is configured (no OpenTelemetry import)."""

    enabled: bool = True
    tracer_provider: Any = None
    meter_provider: Any = None
    endpoint_cap: int = 100
    trace_receivers: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> TelemetryConfig:
        """Check and resolve the ``THORN_TELEMETRY*`` settings.

        Raises:
            ImproperlyConfigured: a provider path that cannot be loaded, an object that is
                no provider, a malformed trace receiver.
        """
        return cls(
            enabled=settings.telemetry,
            tracer_provider=_provider(
                settings.tracer_provider, "THORN_TRACER_PROVIDER", "get_tracer"
            ),
            meter_provider=_provider(settings.meter_provider, "THORN_METER_PROVIDER", "get_meter"),
            endpoint_cap=settings.metrics_endpoint_cap,
            trace_receivers=_receivers(settings.trace_receivers),
        )


# -- the no-op and the OpenTelemetry implementations --------------------------------------


class _Scope:
    """A span (or none) in progress; the delivery code calls :meth:`finish` with the result."""

    __slots__ = ("_exit", "_token", "headers", "span", "start")

    def __init__(self) -> None:
        self.span: Any = None
        #: Headers for the receiver (``traceparent`` when it opted in).
        self.headers: dict[str, str] = {}
        self._token: Any = None
        self.start = 0.0
        self._exit: Callable[[_Scope, BaseException | None], None] | None = None

    def set(self, key: str, value: Any) -> None:
        """Set an attribute of the span (a no-op without one)."""

    def finish(self, outcome: Any) -> None:
        """Record what the scope came to (a send result, a delivery)."""

    def __enter__(self) -> _Scope:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if self._exit is not None:
            self._exit(self, exc)


_NULL_SCOPE = _Scope()


class Telemetry:
    """No telemetry: what an app uses when ``THORN_TELEMETRY`` is off or OpenTelemetry is
    not installed. :class:`_OTelTelemetry` is the real one; both have these methods."""

    active = False

    def send(self, message: EventMessage, app: Thorn) -> _Scope:
        """The span of one ``send()``; ``finish(result)`` adds the subscriber count."""
        return _NULL_SCOPE

    def attempt(self, request: DeliveryRequest, attempt: int) -> _Scope:
        """The HTTP client span of one attempt; ``headers`` go to the receiver (traceparent
        when opted in); ``finish(delivery)`` records its outcome and duration."""
        return _NULL_SCOPE

    def task(self, name: str, request: Any) -> _Scope:
        """The span of a Celery task, in the trace carried by its message."""
        return _NULL_SCOPE

    def task_headers(self) -> dict[str, Any]:
        """Headers of a Celery message that carry the current trace context."""
        return {}

    def annotate(self, key: str, value: Any) -> None:
        """Set an attribute of the current span (the task's, in a worker)."""

    def watch_outbox(self) -> None:
        """Report the app's outbox in the backlog gauges from now on (a relay calls it; an
        app that delivers reports it from its first delivery)."""

    def delivered(self, delivery: Delivery, next_retry_in: float | None = None) -> None:
        """Count a recorded delivery (and the retry or deferral it was given)."""

    def disabled(self, subscriber: Subscriber, delivery: Delivery | None) -> None:
        """Count a subscription switched off."""


class _Capped:
    """Labels as given up to ``cap`` distinct values, then :data:`OTHER`."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        seen = self._seen
        if value in seen:
            return value
        with self._lock:
            if value in seen:
                return value
            if len(seen) < self.cap:
                seen.add(value)
                return value
        return OTHER


class _Instruments:
    """The instruments of one meter, made once (a meter refuses the same name twice)."""

    def __init__(self, meter: Any, observation: Any) -> None:
        self.deliveries = meter.create_counter(
            "thorn.deliveries", unit="{attempt}", description=METRICS["thorn.deliveries"][2]
        )
        self.duration = meter.create_histogram(
            "thorn.delivery.duration",
            unit="s",
            description=METRICS["thorn.delivery.duration"][2],
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        self.retries = meter.create_counter(
            "thorn.delivery.retries",
            unit="{retry}",
            description=METRICS["thorn.delivery.retries"][2],
        )
        self.deferrals = meter.create_counter(
            "thorn.delivery.deferrals",
            unit="{deferral}",
            description=METRICS["thorn.delivery.deferrals"][2],
        )
        self.disabled = meter.create_counter(
            "thorn.endpoints.disabled",
            unit="{subscription}",
            description=METRICS["thorn.endpoints.disabled"][2],
        )
        #: Live apps whose outbox the gauges observe.
        self.apps: weakref.WeakSet[Thorn] = weakref.WeakSet()
        self._observation = observation
        meter.create_observable_gauge(
            "thorn.outbox.backlog",
            callbacks=[self._backlog],
            unit="{event}",
            description=METRICS["thorn.outbox.backlog"][2],
        )
        meter.create_observable_gauge(
            "thorn.outbox.oldest_age",
            callbacks=[self._oldest_age],
            unit="s",
            description=METRICS["thorn.outbox.oldest_age"][2],
        )

    def _outboxes(self) -> list[Any]:
        return [app.outbox for app in list(self.apps) if getattr(app, "outbox", None) is not None]

    def _backlog(self, options: Any) -> list[Any]:
        total = 0
        found = False
        for outbox in self._outboxes():
            pending = getattr(outbox, "pending", None)
            if pending is None:
                continue
            try:
                total += int(pending())
                found = True
            except Exception as exc:
                _complain(exc, "reading the outbox backlog")
        return [self._observation(total)] if found else []

    def _oldest_age(self, options: Any) -> list[Any]:
        ages: list[float] = []
        found = False
        for outbox in self._outboxes():
            oldest = getattr(outbox, "oldest_pending", None)
            if oldest is None:
                continue
            try:
                when = oldest()
            except Exception as exc:
                _complain(exc, "reading the outbox's oldest event")
                continue
            found = True
            if when is not None:
                ages.append(max(0.0, time.time() - when.timestamp()))
        return [self._observation(max(ages, default=0.0))] if found else []


_instruments_lock = threading.Lock()
#: id(meter) -> (meter, its instruments); meters live as long as their provider.
_instruments: dict[int, tuple[Any, _Instruments]] = {}

_complaint_lock = threading.Lock()
_last_complaint = -COMPLAINT_INTERVAL


def _complain(exc: BaseException, doing: str) -> None:
    """Log a telemetry failure, at most once per :data:`COMPLAINT_INTERVAL` seconds."""
    global _last_complaint
    now = time.monotonic()
    with _complaint_lock:
        if now - _last_complaint < COMPLAINT_INTERVAL:
            return
        _last_complaint = now
    logger.warning(
        "Thorn telemetry failed %s (%s: %s); deliveries go on. Logged at most once a minute.",
        doing,
        type(exc).__name__,
        exc,
    )


@functools.lru_cache(maxsize=4096)
def _server(url: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(url)
        return parts.hostname or "", parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return "", None


@functools.lru_cache(maxsize=4096)
def span_url(url: str) -> str:
    """``url`` for a span's ``url.full``: secret query values masked, no user info."""
    from .validators import display_url

    shown = display_url(url)
    scheme, sep, rest = shown.partition("://")
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{tail}"


class _OTelTelemetry(Telemetry):
    """Spans and metrics through the OpenTelemetry API (never its SDK)."""

    active = True

    def __init__(self, config: TelemetryConfig, app: Thorn) -> None:
        from opentelemetry import context, metrics, propagate, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._context = context
        self._trace = trace
        self._propagate = propagate
        self._receiver_propagator = TraceContextTextMapPropagator()
        self._receivers = config.trace_receivers
        self._client = trace.SpanKind.CLIENT
        self._internal = trace.SpanKind.INTERNAL
        self._consumer = trace.SpanKind.CONSUMER
        self._error = trace.Status(trace.StatusCode.ERROR)
        provider = config.tracer_provider
        self._tracer = (
            trace.get_tracer("thorn", __version__)
            if provider is None
            else provider.get_tracer("thorn", __version__)
        )
        meter_provider = config.meter_provider
        meter = (
            metrics.get_meter("thorn", __version__)
            if meter_provider is None
            else meter_provider.get_meter("thorn", __version__)
        )
        with _instruments_lock:
            known = _instruments.get(id(meter))
            if known is None or known[0] is not meter:
                known = _instruments[id(meter)] = (meter, _Instruments(meter, metrics.Observation))
        self._instruments = known[1]
        self._instruments.apps.add(app)
        self._endpoints = _Capped(config.endpoint_cap)
        self._events = _Capped(config.endpoint_cap)
        self._dispatcher = (
            app.settings.dispatcher
            if isinstance(app.settings.dispatcher, str)
            else app.settings.dispatcher.__qualname__
        )

    # -- spans

    def _open(self, name: str, kind: Any, attributes: dict[str, Any], parent: Any = None) -> _Scope:
        scope = _Scope()
        scope._exit = self._close
        scope.start = time.monotonic()
        try:
            span = self._tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
            scope.span = span
            scope._token = self._context.attach(self._trace.set_span_in_context(span))
        except Exception as exc:
            _complain(exc, "starting a span")
        return scope

    def _close(self, scope: _Scope, exc: BaseException | None) -> None:
        span = scope.span
        if span is None:
            return
        scope.span = None
        try:
            if exc is not None:
                span.record_exception(exc)
                span.set_status(self._error)
            token, scope._token = scope._token, None
            if token is not None:
                self._context.detach(token)
            span.end()
        except Exception as failure:
            _complain(failure, "ending a span")

    def send(self, message: EventMessage, app: Thorn) -> _Scope:
        scope = _SendScope(self)
        try:
            scope.enter(
                "thorn.send",
                {
                    "thorn.event": message.event,
                    "thorn.message.id": message.id,
                    "thorn.dispatcher": self._dispatcher,
                },
            )
        except Exception as exc:
            _complain(exc, "starting a span")
        return scope

    def attempt(self, request: DeliveryRequest, attempt: int) -> _Scope:
        url = request.subscriber.url
        host, port = _server(url)
        attributes: dict[str, Any] = {
            "http.request.method": "POST",
            "url.full": span_url(url),
            "server.address": host,
            "thorn.event": request.event,
            "thorn.delivery.id": request.id,
            "thorn.delivery.attempt": attempt,
            "thorn.subscriber.uuid": str(request.subscriber.uuid),
        }
        if port is not None:
            attributes["server.port"] = port
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        scope = _AttemptScope(self, request, attempt)
        scope.enter("POST", attributes)
        return scope

    def task(self, name: str, request: Any) -> _Scope:
        parent = None
        try:
            carrier = getattr(request, TASK_HEADER, None)
            if carrier is None:
                carrier = (getattr(request, "headers", None) or {}).get(TASK_HEADER)
            if isinstance(carrier, Mapping):
                carried = self._propagate.extract(carrier)
                sent = self._trace.get_current_span(carried).get_span_context()
                current = self._trace.get_current_span().get_span_context()
                # opentelemetry-instrumentation-celery makes its task span current: nest
                # under it when it continues the send's trace; else the header links the hop.
                if sent.is_valid and current.trace_id != sent.trace_id:
                    parent = carried
        except Exception as exc:
            _complain(exc, "reading the trace context of a task")
        return self._open(name, self._consumer, {"thorn.task": name}, parent)

    def task_headers(self) -> dict[str, Any]:
        carrier: dict[str, str] = {}
        try:
            self._propagate.inject(carrier)
        except Exception as exc:
            _complain(exc, "injecting the trace context")
        return {TASK_HEADER: carrier} if carrier else {}

    def watch_outbox(self) -> None:
        """Registered when built (see :class:`_Instruments`): nothing more to do."""

    def annotate(self, key: str, value: Any) -> None:
        try:
            self._trace.get_current_span().set_attribute(key, value)
        except Exception as exc:
            _complain(exc, "setting a span attribute")

    # -- metrics

    def delivered(self, delivery: Delivery, next_retry_in: float | None = None) -> None:
        try:
            outcome = outcome_of(delivery)
            endpoint = self._endpoints(url_origin(delivery.subscriber.url))
            event = self._events(delivery.event)
            instruments = self._instruments
            instruments.deliveries.add(
                1, {"thorn.event": event, "thorn.endpoint": endpoint, "thorn.outcome": outcome}
            )
            if outcome == "deferred":
                reason = (delivery.error or "")[len("deferred: ") :].strip().replace(" ", "_")
                instruments.deferrals.add(
                    1,
                    {
                        "thorn.endpoint": endpoint,
                        "thorn.reason": reason if reason in _DEFERRAL_REASONS else OTHER,
                    },
                )
            elif next_retry_in is not None:
                instruments.retries.add(1, {"thorn.event": event, "thorn.endpoint": endpoint})
        except Exception as exc:
            _complain(exc, "recording a delivery")

    def disabled(self, subscriber: Subscriber, delivery: Delivery | None) -> None:
        if delivery is None:
            reason = "manual"
        elif delivery.gone:
            reason = "gone"
        else:
            reason = "failing"
        try:
            self._instruments.disabled.add(
                1,
                {
                    "thorn.endpoint": self._endpoints(url_origin(subscriber.url)),
                    "thorn.reason": reason,
                },
            )
        except Exception as exc:
            _complain(exc, "counting a disabled subscription")

    def observe_duration(self, delivery: Delivery, outcome: str) -> None:
        """Record the duration of one HTTP attempt."""
        self._instruments.duration.record(
            delivery.duration,
            {
                "thorn.endpoint": self._endpoints(url_origin(delivery.subscriber.url)),
                "thorn.outcome": outcome,
            },
        )


class _SendScope(_Scope):
    """The span of one ``send()``."""

    __slots__ = ("_telemetry",)

    def __init__(self, telemetry: _OTelTelemetry) -> None:
        super().__init__()
        self._telemetry = telemetry

    def enter(self, name: str, attributes: dict[str, Any]) -> None:
        opened = self._telemetry._open(name, self._telemetry._internal, attributes)
        self.span, self._token, self._exit = opened.span, opened._token, opened._exit

    def set(self, key: str, value: Any) -> None:
        if self.span is not None:
            try:
                self.span.set_attribute(key, value)
            except Exception as exc:
                _complain(exc, "setting a span attribute")

    def finish(self, outcome: Any) -> None:
        result: SendResult = outcome
        from .fanout import Plan

        plan = result.prepared
        self.set("thorn.send.state", result.state)
        if isinstance(plan, Plan):
            self.set("thorn.subscribers", len(plan.requests) + len(plan.failed))


class _AttemptScope(_SendScope):
    """The HTTP client span of one attempt, the log fields of its records, its duration."""

    __slots__ = ("_attempt", "_log_token", "_request")

    def __init__(self, telemetry: _OTelTelemetry, request: DeliveryRequest, attempt: int) -> None:
        super().__init__(telemetry)
        self._request = request
        self._attempt = attempt
        self._log_token: contextvars.Token[Mapping[str, Any] | None] | None = None

    def enter(self, name: str, attributes: dict[str, Any]) -> None:
        telemetry = self._telemetry
        request = self._request
        self._log_token = _log_fields.set(
            {
                "event": request.event,
                "delivery_id": request.id,
                "subscriber": url_origin(request.subscriber.url),
                "attempt": self._attempt,
                "outcome": None,
            }
        )
        opened = telemetry._open(name, telemetry._client, attributes)
        self.span, self._token, self._exit = opened.span, opened._token, opened._exit
        receivers = telemetry._receivers
        subscriber = request.subscriber
        if (
            self.span is not None
            and receivers
            and (str(subscriber.uuid) in receivers or url_origin(subscriber.url) in receivers)
        ):
            carrier: dict[str, str] = {}
            try:
                telemetry._receiver_propagator.inject(
                    carrier, context=telemetry._trace.set_span_in_context(self.span)
                )
            except Exception as exc:
                _complain(exc, "injecting traceparent")
            self.headers = carrier

    def finish(self, outcome: Any) -> None:
        delivery: Delivery = outcome
        result = outcome_of(delivery)
        span = self.span
        if span is not None:
            try:
                if delivery.url and delivery.url != self._request.subscriber.url:
                    span.set_attribute("url.full", span_url(delivery.url))
                if delivery.status_code is not None:
                    span.set_attribute("http.response.status_code", delivery.status_code)
                span.set_attribute("thorn.delivery.outcome", result)
                if not delivery.ok:
                    kind = (
                        "timeout"
                        if delivery.timed_out
                        else str(delivery.status_code)
                        if delivery.status_code is not None
                        else type(delivery.exception).__name__
                        if delivery.exception is not None
                        else "error"
                    )
                    span.set_attribute("error.type", kind)
                    span.set_status(self._telemetry._error)
            except Exception as exc:
                _complain(exc, "recording an attempt on its span")
        try:
            if delivery.attempts and result != "deferred":
                self._telemetry.observe_duration(delivery, result)
        except Exception as exc:
            _complain(exc, "recording an attempt's duration")
        fields = _log_fields.get()
        if fields is not None:
            _log_fields.set({**fields, "outcome": result})

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        try:
            super().__exit__(kind, exc, tb)
        finally:
            if self._log_token is not None:
                _log_fields.reset(self._log_token)


def build(config: TelemetryConfig, app: Thorn) -> Telemetry:
    """The telemetry of ``app``: OpenTelemetry's when enabled and importable, else none."""
    if not config.enabled:
        return Telemetry()
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return Telemetry()
    try:
        return _OTelTelemetry(config, app)
    except Exception as exc:
        _complain(exc, "setting up")
        return Telemetry()
