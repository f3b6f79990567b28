"""Endpoint health: a circuit breaker, a token bucket and an in-flight cap per endpoint.

Every dispatcher asks the app's :class:`HealthStore` (``app.health``) before an HTTP
attempt (:func:`admit_request`, which applies the subscriber's or the site's limits),
frees the slot after it (:meth:`HealthStore.release`) and reports the outcome
(:func:`record_outcome`). A delivery not admitted becomes :func:`deferred_delivery`
(``"deferred: circuit open"`` and so on), recorded like an attempt but counted as none.
The subscriber's failure streak (auto-disable) is counted by ``Thorn.after_delivery``,
which every recorded delivery goes through: dispatchers do not count it themselves.

An endpoint is the URL origin of a subscriber (:func:`endpoint_key`), so the
subscriptions of one receiver share its health. :class:`MemoryHealthStore` holds it in one
process; :class:`~thorn_core.health_redis.RedisHealthStore` shares it between every worker
and web process of a site.

The rate limit is a token bucket holding one token: deliveries to an endpoint are spaced
``1 / rate_limit`` seconds apart, and a refused one learns the exact time its token comes.

The breaker: *closed* until, over ``THORN_CIRCUIT_WINDOW`` seconds with at least
``THORN_CIRCUIT_MIN_REQUESTS`` attempts, the share of failed ones reaches
``THORN_CIRCUIT_FAILURE_RATE``; then *open* for a cool-off (``THORN_CIRCUIT_COOLOFF``),
after which one probe is admitted (*half_open*). The probe's success closes the circuit;
its failure opens it again with the cool-off doubled, up to ``THORN_CIRCUIT_COOLOFF_MAX``.
A failure here is a retryable one (timeout, connection error, 408, 429, 5xx): a receiver
that answers 4xx is up.

Transitions are reported by :meth:`HealthStore.record` in :attr:`EndpointStatus.transition`
(``"opened"`` or ``"closed"``), exactly once across processes for each transition, and
:func:`record_outcome` sends the ``circuit_opened`` / ``circuit_closed`` signals for it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import attrs

from . import signals

if TYPE_CHECKING:
    from .app import Thorn
    from .delivery import Delivery, DeliveryRequest
    from .settings import Settings
    from .subscribers import Subscriber

__all__ = [
    "DEFERRED_CIRCUIT_OPEN",
    "DEFERRED_MAX_IN_FLIGHT",
    "DEFERRED_PREFIX",
    "DEFERRED_RATE_LIMITED",
    "DEFERRED_SLOW",
    "Admission",
    "CircuitState",
    "EndpointStatus",
    "HealthStore",
    "MemoryHealthStore",
    "Transition",
    "admit_request",
    "breaker_failure",
    "deferral_error",
    "deferred_delivery",
    "endpoint_key",
    "is_deferred",
    "limits_for",
    "record_outcome",
    "url_origin",
]

CircuitState = Literal["closed", "open", "half_open"]
Transition = Literal["opened", "closed"]

#: How every deferral's error text starts (the delivery log and ``result.deliveries``).
DEFERRED_PREFIX = "deferred: "
DEFERRED_CIRCUIT_OPEN = "deferred: circuit open"
DEFERRED_RATE_LIMITED = "deferred: rate limited"
DEFERRED_MAX_IN_FLIGHT = "deferred: max in flight"
DEFERRED_SLOW = "deferred: slow endpoint"
_DEFERRAL_ERRORS = {
    "circuit_open": DEFERRED_CIRCUIT_OPEN,
    "rate_limited": DEFERRED_RATE_LIMITED,
    "max_in_flight": DEFERRED_MAX_IN_FLIGHT,
    "slow": DEFERRED_SLOW,
}

#: Buckets of the sliding window; the window moves on by a tenth of it at a time.
WINDOW_BUCKETS = 10
#: Tokens a bucket may lack and still grant one: absorbs the rounding of stored times.
TOKEN_EPSILON = 1e-6
#: Seconds a denied ``max_in_flight`` admission suggests waiting before asking again.
IN_FLIGHT_RETRY = 1.0
#: Seconds at least that an in-flight slot or a probe is held when nobody releases it (a
#: process died mid-delivery); :func:`lease_for` gives the actual figure.
MIN_LEASE = 60.0

_DEFAULT_PORTS = {"http": 80, "https": 443}


@attrs.frozen
class Admission:
    """Whether a delivery may be attempted now; when not, why and when to ask again.

    ``reason`` is ``"circuit_open"``, ``"rate_limited"`` or ``"max_in_flight"`` when refused;
    ``retry_at`` is then the time (epoch seconds) the endpoint may admit it. ``probe`` marks
    the single delivery a half-open circuit lets through.
    """

    allowed: bool
    reason: str | None = None
    retry_at: float | None = None
    probe: bool = False


@attrs.frozen
class EndpointStatus:
    """What a health store knows of one endpoint (for the dispatchers, APIs, admin, CLI).

    ``failure_rate`` is ``failures / requests`` over the current window (0 without
    requests). ``failure_streak`` counts consecutive failed attempts since the last
    success (``streak_since`` when it began, epoch seconds). ``transition`` is set only on
    the status :meth:`HealthStore.record` returns when that record changed the circuit.
    """

    key: str
    state: CircuitState = "closed"
    failure_rate: float = 0.0
    requests: int = 0
    failures: int = 0
    opened_at: float | None = None
    next_probe_at: float | None = None
    failure_streak: int = 0
    streak_since: float | None = None
    slow_until: float | None = None
    transition: Transition | None = attrs.field(default=None, eq=False)


def endpoint_key(subscriber: Subscriber) -> str:
    """The endpoint a subscriber's deliveries go to: its ``endpoint`` when set, else the URL
    origin ``scheme://host:port`` (host in lower case, the default port written out, no
    user info), so that every subscription of one receiver shares its health."""
    override = getattr(subscriber, "endpoint", None)
    if override:
        return str(override)
    return url_origin(subscriber.url)


def url_origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (see :func:`endpoint_key`)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def lease_for(settings: Settings) -> float:
    """Seconds an in-flight slot or a probe is held at most when never released or recorded."""
    return max(MIN_LEASE, 4 * settings.event_timeout)


@runtime_checkable
class HealthStore(Protocol):
    """Per-endpoint health state, shared by whoever shares the store.

    Implemented by :class:`MemoryHealthStore` (one process) and
    :class:`~thorn_core.health_redis.RedisHealthStore` (every process of a site). Every
    method is atomic per key; ``now`` (epoch seconds) defaults to the current time and is
    given by tests.
    """

    def admit(
        self,
        key: str,
        *,
        rate_limit: float | None,
        max_in_flight: int | None,
        now: float | None = None,
    ) -> Admission:
        """Check the breaker, the token bucket (``rate_limit`` per second) and the in-flight
        cap; when allowed, take the token and an in-flight slot."""
        ...

    def release(self, key: str) -> None:
        """Free the in-flight slot an allowed :meth:`admit` took."""
        ...

    def record(
        self,
        key: str,
        *,
        ok: bool,
        duration: float,
        timed_out: bool = False,
        now: float | None = None,
    ) -> EndpointStatus:
        """Count an attempt in the window, move the breaker and the failure streak, and mark
        the endpoint slow when it timed out or took over ``THORN_SLOW_THRESHOLD``."""
        ...

    def status(self, key: str) -> EndpointStatus:
        """The endpoint's current status."""
        ...

    def statuses(self, keys: Iterable[str]) -> dict[str, EndpointStatus]:
        """The status of each of ``keys``."""
        ...

    def is_slow(self, key: str) -> bool:
        """Whether the endpoint was marked slow and the mark has not expired."""
        ...

    def reset(self, key: str) -> None:
        """Forget everything about the endpoint (closed, no counts)."""
        ...

    def record_streak(self, subscriber: str, *, ok: bool, now: float | None = None) -> int:
        """Count a subscriber's attempt in its failure streak (a success resets it); return
        the streak's length. :meth:`streak_since` says when it began."""
        ...

    def streak_since(self, subscriber: str) -> float | None:
        """When the subscriber's current failure streak began (None without one)."""
        ...

    def reset_streak(self, subscriber: str) -> None:
        """Forget a subscriber's failure streak (it was re-enabled)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@attrs.define
class _Endpoint:
    """The mutable state of one endpoint in a :class:`MemoryHealthStore`."""

    state: CircuitState = "closed"
    opened_at: float | None = None
    next_probe_at: float | None = None
    cooloff: float = 0.0
    probe_until: float | None = None
    tokens: float = 1.0
    tokens_at: float | None = None
    in_flight: list[float] = attrs.Factory(list)
    streak: int = 0
    streak_since: float | None = None
    slow_until: float | None = None
    #: bucket slot -> (bucket index, requests, failures)
    buckets: dict[int, tuple[int, int, int]] = attrs.Factory(dict)


class MemoryHealthStore:
    """Endpoint health in this process's memory: the ``default`` dispatcher's store, and the
    fallback of the Redis store while Redis is unreachable."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lease = lease_for(settings)
        self._lock = threading.Lock()
        self._endpoints: dict[str, _Endpoint] = {}
        self._streaks: dict[str, tuple[int, float | None]] = {}

    def _get(self, key: str) -> _Endpoint:
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = _Endpoint()
        return endpoint

    def admit(
        self,
        key: str,
        *,
        rate_limit: float | None,
        max_in_flight: int | None,
        now: float | None = None,
    ) -> Admission:
        """Check the breaker, the token bucket and the in-flight cap (see :class:`HealthStore`)."""
        now = time.time() if now is None else now
        with self._lock:
            e = self._get(key)
            probe = False
            if e.state == "open":
                assert e.next_probe_at is not None
                if now < e.next_probe_at:
                    return Admission(False, "circuit_open", e.next_probe_at)
                probe = True
            elif e.state == "half_open":
                if e.probe_until is not None and now < e.probe_until:
                    return Admission(False, "circuit_open", e.probe_until)
                probe = True
            if e.in_flight:
                e.in_flight = [until for until in e.in_flight if until > now]
            if max_in_flight is not None and len(e.in_flight) >= max_in_flight:
                return Admission(False, "max_in_flight", now + IN_FLIGHT_RETRY)
            if rate_limit is not None:
                tokens = _refill(e.tokens, e.tokens_at, rate_limit, now)
                if tokens < 1.0 - TOKEN_EPSILON:
                    return Admission(False, "rate_limited", now + (1.0 - tokens) / rate_limit)
                e.tokens, e.tokens_at = max(0.0, tokens - 1.0), now
            e.in_flight.append(now + self._lease)
            if probe:
                e.state = "half_open"
                e.probe_until = now + self._lease
            return Admission(True, None, None, probe)

    def release(self, key: str) -> None:
        """Free the oldest in-flight slot of ``key``."""
        with self._lock:
            e = self._endpoints.get(key)
            if e is not None and e.in_flight:
                e.in_flight.pop(0)

    def record(
        self,
        key: str,
        *,
        ok: bool,
        duration: float,
        timed_out: bool = False,
        now: float | None = None,
    ) -> EndpointStatus:
        """Count an attempt and move the breaker (see :class:`HealthStore`)."""
        now = time.time() if now is None else now
        s = self.settings
        width = s.circuit_window / WINDOW_BUCKETS
        with self._lock:
            e = self._get(key)
            index = math.floor(now / width)
            slot = index % WINDOW_BUCKETS
            at, requests, failures = e.buckets.get(slot, (index, 0, 0))
            if at != index:
                requests = failures = 0
            e.buckets[slot] = (index, requests + 1, failures + (0 if ok else 1))
            if ok:
                e.streak, e.streak_since = 0, None
            else:
                e.streak += 1
                e.streak_since = e.streak_since if e.streak_since is not None else now
            if timed_out or duration > s.slow_threshold:
                e.slow_until = now + s.circuit_cooloff
            elif ok:
                e.slow_until = None
            transition: Transition | None = None
            if e.state == "half_open":
                if ok:
                    e.state, e.opened_at, e.next_probe_at = "closed", None, None
                    e.cooloff, e.probe_until = 0.0, None
                    e.buckets.clear()
                    transition = "closed"
                else:
                    e.cooloff = min(e.cooloff * 2 or s.circuit_cooloff, s.circuit_cooloff_max)
                    e.state, e.opened_at, e.next_probe_at = "open", now, now + e.cooloff
                    e.probe_until = None
            elif e.state == "closed" and not ok:
                total, failed = _window(e.buckets, index)
                if total >= s.circuit_min_requests and failed >= s.circuit_failure_rate * total:
                    e.cooloff = s.circuit_cooloff
                    e.state, e.opened_at, e.next_probe_at = "open", now, now + e.cooloff
                    transition = "opened"
            return attrs.evolve(self._status(key, e, now), transition=transition)

    def _status(self, key: str, e: _Endpoint, now: float) -> EndpointStatus:
        width = self.settings.circuit_window / WINDOW_BUCKETS
        total, failed = _window(e.buckets, math.floor(now / width))
        return EndpointStatus(
            key=key,
            state=e.state,
            failure_rate=failed / total if total else 0.0,
            requests=total,
            failures=failed,
            opened_at=e.opened_at,
            next_probe_at=e.next_probe_at,
            failure_streak=e.streak,
            streak_since=e.streak_since,
            slow_until=e.slow_until if e.slow_until is not None and e.slow_until > now else None,
        )

    def status(self, key: str) -> EndpointStatus:
        """The endpoint's current status."""
        now = time.time()
        with self._lock:
            e = self._endpoints.get(key)
            return EndpointStatus(key) if e is None else self._status(key, e, now)

    def statuses(self, keys: Iterable[str]) -> dict[str, EndpointStatus]:
        """The status of each of ``keys``."""
        return {key: self.status(key) for key in keys}

    def is_slow(self, key: str) -> bool:
        """Whether the endpoint is marked slow now."""
        with self._lock:
            e = self._endpoints.get(key)
            return e is not None and e.slow_until is not None and e.slow_until > time.time()

    def reset(self, key: str) -> None:
        """Forget the endpoint."""
        with self._lock:
            self._endpoints.pop(key, None)

    def record_streak(self, subscriber: str, *, ok: bool, now: float | None = None) -> int:
        """Count an attempt in the subscriber's failure streak; return its length."""
        now = time.time() if now is None else now
        with self._lock:
            if ok:
                self._streaks.pop(subscriber, None)
                return 0
            count, since = self._streaks.get(subscriber, (0, None))
            self._streaks[subscriber] = (count + 1, now if since is None else since)
            return count + 1

    def streak_since(self, subscriber: str) -> float | None:
        """When the subscriber's failure streak began."""
        with self._lock:
            return self._streaks.get(subscriber, (0, None))[1]

    def reset_streak(self, subscriber: str) -> None:
        """Forget the subscriber's failure streak."""
        with self._lock:
            self._streaks.pop(subscriber, None)

    def close(self) -> None:
        """Nothing to release."""


def _refill(tokens: float, at: float | None, rate: float, now: float) -> float:
    """The tokens of a bucket holding one at most, ``rate`` per second, last seen at ``at``.

    The bucket holds a single token, so deliveries are spaced ``1 / rate`` apart and no
    one-second window sees more than the rate (plus the one that opened it).
    """
    if at is None:
        return 1.0
    return min(1.0, tokens + max(0.0, now - at) * rate)


def _window(buckets: dict[int, tuple[int, int, int]], index: int) -> tuple[int, int]:
    """Requests and failures of the buckets inside the window ending with bucket ``index``."""
    total = failed = 0
    for at, requests, failures in buckets.values():
        if index - WINDOW_BUCKETS < at <= index:
            total += requests
            failed += failures
    return total, failed


def limits_for(app: Thorn, subscriber: Subscriber) -> tuple[float | None, int | None]:
    """The rate limit and in-flight cap of ``subscriber``: its own, else the site's
    (``THORN_RATE_LIMIT``, ``THORN_MAX_IN_FLIGHT``)."""
    rate = getattr(subscriber, "rate_limit", None)
    cap = getattr(subscriber, "max_in_flight", None)
    settings = app.settings
    return (
        settings.rate_limit if rate is None else rate,
        settings.max_in_flight if cap is None else cap,
    )


def admit_request(app: Thorn, subscriber: Subscriber, *, now: float | None = None) -> Admission:
    """Ask ``app.health`` whether a delivery to ``subscriber`` may be attempted now."""
    rate, cap = limits_for(app, subscriber)
    return app.health.admit(endpoint_key(subscriber), rate_limit=rate, max_in_flight=cap, now=now)


def breaker_failure(delivery: Delivery) -> bool:
    """Whether an attempted delivery counts against its endpoint's circuit: a retryable
    failure (timeout, connection error, 408, 429, 5xx). A 4xx answer shows the receiver up."""
    return not delivery.ok and delivery.retryable


def record_outcome(app: Thorn, delivery: Delivery) -> EndpointStatus | None:
    """Report an attempted delivery to ``app.health`` and send ``circuit_opened`` /
    ``circuit_closed`` when it moved the circuit. A delivery without an HTTP attempt
    (refused, deferred) is not reported; None then."""
    if delivery.attempts < 1:
        return None
    key = endpoint_key(delivery.subscriber)
    status = app.health.record(
        key,
        ok=not breaker_failure(delivery),
        duration=delivery.duration,
        timed_out=delivery.timed_out,
    )
    signal = None
    if status.transition == "opened":
        signal = signals.circuit_opened
    elif status.transition == "closed":
        signal = signals.circuit_closed
    if signal is not None and signal.receivers:
        signal.send(app, key=key, status=status)
    return status


def deferral_error(reason: str) -> str:
    """The error text of a delivery deferred for ``reason`` (an :class:`Admission` reason,
    or ``"slow"``): ``"deferred: circuit open"`` and so on."""
    return _DEFERRAL_ERRORS.get(reason, DEFERRED_PREFIX + reason.replace("_", " "))


def deferred_delivery(
    request: DeliveryRequest, reason: str, retry_at: float | None, *, now: float | None = None
) -> Delivery:
    """The outcome of a delivery not attempted now: ``ok=False``, no attempt, ``retryable``,
    ``error`` naming the reason, ``retry_after`` the seconds until ``retry_at``. Its id and
    retries stay with the request, for whoever attempts it later."""
    from .delivery import Delivery

    now = time.time() if now is None else now
    wait = None if retry_at is None else max(0.0, retry_at - now)
    return Delivery(
        id=request.id,
        event=request.event,
        subscriber=request.subscriber,
        ok=False,
        attempts=0,
        error=deferral_error(reason),
        retryable=True,
        retry_after=wait,
        url=request.subscriber.url,
        request=request,
    )


def is_deferred(delivery: Delivery) -> bool:
    """Whether ``delivery`` was deferred (no attempt made now) rather than attempted."""
    return delivery.attempts == 0 and (delivery.error or "").startswith(DEFERRED_PREFIX)
