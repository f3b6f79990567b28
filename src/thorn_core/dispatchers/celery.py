"""The ``celery`` dispatcher: ``send()`` publishes one message per event; Celery workers deliver.

Reached only through the dispatcher resolver (``THORN_DISPATCHER = "celery"``), so that
``import thorn_core`` never imports Celery. Importing this module registers Thorn's two
tasks as shared tasks:

- ``thorn.dispatch_events`` carries one or more sent events (``THORN_CHUNKSIZE`` at most). The
  worker resolves their subscribers, sorts the deliveries by URL and sends them itself when
  they fit in one chunk, else publishes them as chunks of ``THORN_CHUNKSIZE``.
- ``thorn.deliver`` carries a chunk of deliveries (or one delivery to retry). Each failed
  delivery is retried alone, with the countdown of :class:`~thorn_core.retry.RetryPolicy`,
  under its original delivery id.

Within a task, the deliveries are grouped by endpoint (:func:`~thorn_core.health.endpoint_key`):
different endpoints are served concurrently on a bounded pool of ``THORN_POOL_SIZE`` threads,
one endpoint's deliveries in order on one thread (one kept-alive connection). Each attempt is
admitted by ``app.health`` first; a delivery it refuses (circuit open, over the rate limit or
the in-flight cap) is re-published with a countdown until the time it gives, keeping its
attempt count, and logged as ``deferred: ...``. When an endpoint is (or turns) slow, the rest
of its deliveries are re-published to ``THORN_CELERY_SLOW_QUEUE`` (else the same queue)
instead of being waited on.

Both are ``acks_late`` and ``reject_on_worker_lost``: a worker that dies mid-delivery leaves
the message on the broker, and another worker delivers it again (at least once).

Two maintenance tasks are meant for Celery beat (see docs/celery.md):

- ``thorn.relay_outbox`` dispatches the events stored in the outbox (``THORN_OUTBOX``).
- ``thorn.prune_delivery_log`` removes attempts older than ``THORN_DELIVERY_LOG_RETENTION``,
  and the outbox's events dispatched before then.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from typing import TYPE_CHECKING, Any

import attrs

from ..exceptions import ImproperlyConfigured, SerializationError

try:
    import celery  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without Celery
    raise ImproperlyConfigured(
        "THORN_DISPATCHER='celery' needs Celery, which is not installed: "
        "pip install 'thorn-webhooks[celery]'"
    ) from exc
from celery import shared_task
from celery.exceptions import Reject  # type: ignore[import-untyped]
from celery.signals import task_postrun, task_prerun  # type: ignore[import-untyped]

from .. import signals
from ..app import configured_app
from ..codecs import JSON_CONTENT_TYPE, JSONCodec
from ..delivery import Delivery, DeliveryRequest
from ..fanout import (
    delivery_id_for,
    encode_body,
    no_codec_delivery,
    resolve_subscribers,
    signed_request,
    signing_failure,
    unsent_delivery,
)
from ..health import admit_request, deferred_delivery, endpoint_key, record_outcome
from ..message import EventMessage
from ..outbox import drain, prune
from ..results import SendResult
from ..retry import RetryPolicy
from ..rotation import current_secrets
from ..subscribers import Subscriber
from ..telemetry import delivery_extra, get_logger
from ..transport import RequestsTransport, Transport
from ..validators import display_url

if TYPE_CHECKING:
    from ..app import Thorn
    from ..settings import Settings

__all__ = [
    "DELIVER_TASK",
    "DISPATCH_TASK",
    "PRUNE_TASK",
    "RELAY_TASK",
    "CeleryDispatcher",
    "celery_app_for",
]

logger = get_logger(__name__)

#: The task that carries sent events (one message per event, or per chunk of a buffer).
DISPATCH_TASK = "thorn.dispatch_events"
#: The task that carries a chunk of deliveries, or one delivery to retry.
DELIVER_TASK = "thorn.deliver"

#: The task that relays the outbox (for Celery beat).
RELAY_TASK = "thorn.relay_outbox"
#: The task that prunes the delivery log (for Celery beat).
PRUNE_TASK = "thorn.prune_delivery_log"

#: Options of both tasks. JSON only; the message stays on the broker until the task ends.
_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "serializer": "json",
}

#: A delivery as a task carries it: [message index, subscriber dict, delivery id, attempt].
WireDelivery = list[Any]

#: Seconds one endpoint's deliveries in a task may wait in all for rate-limit tokens or
#: in-flight slots before the rest are re-published with a countdown instead.
SHORT_WAIT = 1.0
#: Seconds between two looks at an endpoint's in-flight cap while waiting for a slot.
IN_FLIGHT_POLL = 0.05
#: Seconds between two looks, by a task, at how long its endpoints' attempts have taken.
SLOW_POLL = 0.05


def celery_app_for(settings: Settings) -> Any:
    """The Celery app of ``THORN_CELERY_APP``: an app, a ``module:attr`` path, or None for
    Celery's current app.

    Raises:
        ImproperlyConfigured: the value is neither, or its path cannot be imported.
    """
    value = settings.celery_app
    if value is None:
        return celery.current_app._get_current_object()
    if isinstance(value, str):
        module_name, _, attribute = value.partition(":")
        if not module_name or not attribute:
            raise ImproperlyConfigured(
                f"THORN_CELERY_APP {value!r} is not of the form 'module:attribute'"
            )
        try:
            value = getattr(import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ImproperlyConfigured(
                f"THORN_CELERY_APP {value!r} cannot be loaded: {exc}"
            ) from exc
    if not isinstance(value, celery.Celery):
        raise ImproperlyConfigured(
            f"THORN_CELERY_APP must be a Celery app, a 'module:attribute' path to one, or None; "
            f"got {value!r}"
        )
    return value


def _check_broker(capp: Any) -> None:
    """Refuse a Celery app without a broker URL of its own (Celery's implicit default)."""
    if not capp.conf.broker_write_url:
        raise ImproperlyConfigured(
            f"THORN_DISPATCHER='celery': the Celery app {capp.main or capp!r} has no broker "
            "configured (set broker_url, CELERY_BROKER_URL, or THORN_CELERY_APP to the app "
            "that has one); Thorn does not fall back to Celery's implicit amqp://localhost"
        )


def _events_repr(messages: Sequence[Mapping[str, Any]]) -> str:
    """What Celery logs and shows to monitors for a message: ids and names, never the payload
    or the subscribers' secrets (and cheaper than Celery's own repr of the arguments)."""
    return "[" + ", ".join(f"<Thorn event {m['event']} {m['id']}>" for m in messages) + "]"


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CeleryDispatcher:
    """Publishes events to Celery; in a worker, delivers them.

    ``dispatch`` publishes one ``thorn.dispatch_events`` message per event, or one per
    ``THORN_CHUNKSIZE`` events when a buffer flushes, and marks the results ``queued``. It looks
    up no subscriber and makes no HTTP request. Messages are JSON (:meth:`EventMessage.to_dict`);
    per-send callbacks cannot travel and are not called: connect to Thorn's signals in the
    worker instead.

    In a worker process the same class holds the HTTP transport (one ``requests.Session`` per
    thread, made again after a fork) and is closed with the app.

    Raises:
        ImproperlyConfigured: ``THORN_CELERY_APP`` is invalid or its app has no broker.
    """

    def __init__(self, app: Thorn) -> None:
        self.app = app
        self.celery = celery_app_for(app.settings)
        _check_broker(self.celery)
        codec = app.codecs.get(JSON_CONTENT_TYPE) or JSONCodec()
        self._encode = codec.encode
        self._lock = threading.Lock()
        self._transport: Transport | None = None
        self._transport_pid = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0

    @classmethod
    def check(cls, settings: Settings) -> None:
        """Fail at start-up (``Thorn(...)``) when the Celery app cannot be used.

        Raises:
            ImproperlyConfigured: ``THORN_CELERY_APP`` is invalid or its app has no broker.
        """
        _check_broker(celery_app_for(settings))

    def route(self, *, slow: bool = False) -> dict[str, Any]:
        """Publishing options: ``THORN_CELERY_QUEUE`` when set, else Celery's own routing;
        for deliveries to a slow endpoint ``THORN_CELERY_SLOW_QUEUE`` when that is set."""
        settings = self.app.settings
        name = (slow and settings.celery_slow_queue) or settings.celery_queue
        return {"queue": name} if name else {}

    def dispatch(self, results: Sequence[SendResult]) -> None:
        """Publish the events of ``results`` (all encoded before the first is published).

        Raises:
            SerializationError: a payload, sender or context has no JSON form; nothing is sent.
        """
        bodies = [result.message.to_dict(self._encode) for result in results]
        route = self.route()
        for chunk in _chunks(bodies, self.app.settings.chunksize):
            self.celery.send_task(
                DISPATCH_TASK,
                args=[list(chunk)],
                serializer="json",
                ignore_result=True,
                argsrepr=_events_repr(chunk),
                kwargsrepr="{}",
                headers=self.app.telemetry.task_headers(),
                **route,
            )
        for result in results:
            result.state = "queued"

    # -- worker side --------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """This process's transport (a forked pool child makes its own)."""
        pid = os.getpid()
        with self._lock:
            if self._transport is None or self._transport_pid != pid:
                self._transport = RequestsTransport(ca_bundle=self.app.settings.ca_bundle)
                self._transport_pid = pid
            return self._transport

    @property
    def pool(self) -> ThreadPoolExecutor:
        """This process's pool of ``THORN_POOL_SIZE`` threads serving endpoints concurrently
        (a forked pool child makes its own)."""
        pid = os.getpid()
        with self._lock:
            if self._pool is None or self._pool_pid != pid:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.app.settings.pool_size, thread_name_prefix="thorn-endpoint"
                )
                self._pool_pid = pid
            return self._pool

    def close(self) -> None:
        """Stop this process's endpoint threads and close its HTTP sessions, if a worker
        task started any."""
        with self._lock:
            transport, self._transport = self._transport, None
            owned = self._transport_pid == os.getpid()
            pool, self._pool = self._pool, None
            pool_owned = self._pool_pid == os.getpid()
        if pool is not None and pool_owned:
            pool.shutdown(wait=True)
        if transport is not None and owned:
            transport.close()


_fallback_lock = threading.Lock()

#: Thorn's tasks whose runs get a span in the trace of the ``send()`` that made them.
_TRACED_TASKS = frozenset({DISPATCH_TASK, DELIVER_TASK})


@task_prerun.connect(weak=False)  # type: ignore[untyped-decorator]
def _start_task_span(sender: Any = None, task: Any = None, **_: Any) -> None:
    """Open the span of a Thorn task, a child of the context its message carries."""
    task = task or sender
    if getattr(task, "name", None) not in _TRACED_TASKS:
        return
    try:
        app = configured_app()
    except ImproperlyConfigured:
        return  # the task retries itself later (see _worker_app)
    scope = app.telemetry.task(task.name, task.request)
    task.request.thorn_task_scope = scope.__enter__()


@task_postrun.connect(weak=False)  # type: ignore[untyped-decorator]
def _end_task_span(sender: Any = None, task: Any = None, **_: Any) -> None:
    """Close the span :func:`_start_task_span` opened."""
    task = task or sender
    scope = getattr(getattr(task, "request", None), "thorn_task_scope", None)
    if scope is not None:
        task.request.thorn_task_scope = None
        scope.__exit__(None, None, None)


def _worker_dispatcher(app: Thorn) -> CeleryDispatcher:
    """The app's Celery dispatcher, or (for a worker configured with another dispatcher) one
    kept on the app object so that it is closed with it."""
    dispatcher = app.dispatcher
    if isinstance(dispatcher, CeleryDispatcher):
        return dispatcher
    with _fallback_lock:
        found: CeleryDispatcher | None = getattr(app, "_thorn_celery_worker", None)
        if found is None:
            found = CeleryDispatcher(app)
            app._thorn_celery_worker = found  # type: ignore[attr-defined]
        return found


class _Batch:
    """Deliveries of some messages, sent in order by one task, each failed one retried alone."""

    def __init__(self, task: Any, app: Thorn, messages: Sequence[Mapping[str, Any]]) -> None:
        self.task = task
        self.app = app
        self.raw = messages
        self.messages = [EventMessage.from_dict(m) for m in messages]
        self.dispatcher = _worker_dispatcher(app)
        self._results: dict[int, SendResult] = {}
        self._bodies: dict[tuple[int, str], bytes | None] = {}
        #: Tasks that could not be published (a broker blip): (deliveries, countdown, slow).
        self._unpublished: list[tuple[list[WireDelivery], float | None, bool]] = []

    def publish(
        self,
        deliveries: Sequence[WireDelivery],
        countdown: float | None = None,
        *,
        slow: bool = False,
    ) -> None:
        """Publish ``deliveries`` as one ``thorn.deliver`` task, with the messages they need;
        ``slow`` ones (to a slow endpoint) go to ``THORN_CELERY_SLOW_QUEUE`` when set."""
        used = sorted({d[0] for d in deliveries})
        index = {old: new for new, old in enumerate(used)}
        payload: dict[str, Any] = {
            "messages": [self.raw[i] for i in used],
            "deliveries": [[index[d[0]], *d[1:]] for d in deliveries],
        }
        if slow:
            payload["slow"] = True
        self.task.app.send_task(
            DELIVER_TASK,
            args=[payload],
            countdown=countdown,
            serializer="json",
            ignore_result=True,
            argsrepr=f"[<Thorn deliveries {', '.join(d[2] for d in deliveries)}>]",
            kwargsrepr="{}",
            headers=self.app.telemetry.task_headers(),
            **self.dispatcher.route(slow=slow),
        )

    def publish_or_keep(
        self,
        deliveries: Sequence[WireDelivery],
        countdown: float | None = None,
        *,
        slow: bool = False,
    ) -> None:
        """Publish, or keep the deliveries for :meth:`finish` when the broker refuses."""
        try:
            self.publish(deliveries, countdown, slow=slow)
        except Exception:
            logger.exception("Publishing Thorn deliveries failed; trying again after the chunk")
            self._unpublished.append((list(deliveries), countdown, slow))

    def finish(self) -> None:
        """Publish what could not be published during the task, or requeue the task.

        Nothing is dropped: when the broker still refuses, the task's own message is
        requeued (``Reject(requeue=True)``), so its deliveries are made again under the same
        ids (receivers deduplicate on ``Hook-Delivery``).
        """
        pending, self._unpublished = self._unpublished, []
        for deliveries, countdown, slow in pending:
            try:
                self.publish(deliveries, countdown, slow=slow)
            except Exception as exc:
                raise Reject(
                    f"cannot publish {len(deliveries)} Thorn deliveries: {exc}", requeue=True
                ) from exc

    def plan(self) -> list[tuple[int, Subscriber]]:
        """Resolve every message's subscribers: (message index, subscriber) sorted by URL
        (hosts together). :meth:`wires` makes their deliveries, a chunk at a time."""
        planned = [
            (i, subscriber)
            for i, message in enumerate(self.messages)
            for subscriber in resolve_subscribers(self.app, message)
        ]
        planned.sort(key=lambda item: item[1].url)
        return planned

    def wires(self, planned: Sequence[tuple[int, Subscriber]]) -> list[WireDelivery]:
        """The first attempts of planned deliveries, as tasks carry them (made per chunk, so
        that a large fan-out never holds every subscriber's dict at once)."""
        return [
            [i, subscriber.as_dict(), delivery_id_for(self.messages[i], subscriber), 1]
            for i, subscriber in planned
        ]

    def _result(self, i: int) -> SendResult:
        result = self._results.get(i)
        if result is None:
            result = self._results[i] = SendResult(self.messages[i], state="queued")
        return result

    def _body(self, i: int, content_type: str) -> bytes | None:
        key = (i, content_type)
        if key not in self._bodies:
            self._bodies[key] = encode_body(self.app, self.messages[i], content_type)
        return self._bodies[key]

    def deliver(self, deliveries: Sequence[WireDelivery], *, slow: bool = False) -> None:
        """Send the deliveries, each endpoint's in order and different endpoints concurrently;
        schedule retries of failures and re-publish what is deferred.

        Only the HTTP attempts and the health store's bookkeeping run on the pool's threads;
        results are recorded (delivery log, signals, callbacks) and tasks published on the
        task's own thread, as the outcomes arrive. An attempt still in flight after
        ``THORN_SLOW_THRESHOLD`` is not waited for: it and the rest of its endpoint's
        deliveries go to the slow queue (the attempt may still succeed: receivers deduplicate
        on ``Hook-Delivery``). ``slow`` deliveries (re-published because their endpoint was
        slow) are attempted in this thread, and waited for, even while it still is.
        """
        lanes: dict[str, _Lane] = {}
        for wire in deliveries:
            ready = self._prepare(wire)
            if ready is not None:
                key = endpoint_key(ready.request.subscriber)
                lanes.setdefault(key, _Lane(key)).items.append(ready)
        if slow:
            for lane in lanes.values():
                self._serve(lane, slow, self._handle)
            return
        outcomes: queue.SimpleQueue[_Outcome | str] = queue.SimpleQueue()

        def serve(lane: _Lane) -> None:
            try:
                self._serve(lane, slow, outcomes.put)
            finally:
                outcomes.put(lane.key)

        pool = self.dispatcher.pool
        for lane in lanes.values():
            # Each endpoint's thread sees this task's context (telemetry, an app context).
            pool.submit(contextvars.copy_context().run, serve, lane)
        threshold = self.app.settings.slow_threshold
        while lanes:
            try:
                outcome = outcomes.get(timeout=SLOW_POLL)
            except queue.Empty:
                pass
            else:
                if isinstance(outcome, str):
                    lanes.pop(outcome, None)
                else:
                    self._handle(outcome)
            now = time.monotonic()
            for lane in list(lanes.values()):
                given_up = lane.give_up(threshold, now)
                if given_up is not None:
                    del lanes[lane.key]
                    self._give_up(lane, *given_up)

    def _prepare(self, wire: WireDelivery) -> _Ready | None:
        """The signed request of a wire delivery; None (and its failure recorded) when it
        cannot be made (no codec, an unencodable payload, an unusable secret)."""
        app = self.app
        i, subscriber_data, delivery_id, _attempt = wire
        message = self.messages[i]
        subscriber = Subscriber.from_dict(subscriber_data)
        if wire[3] > 1:  # a retry signs with the secrets live now (a rotation since)
            subscriber = current_secrets(app, subscriber)
        try:
            body = self._body(i, subscriber.content_type)
        except SerializationError as exc:
            failed = unsent_delivery(message, subscriber, delivery_id, str(exc), exc)
            self._result(i).record(app, failed)
            return None
        if body is None:
            self._result(i).record(app, no_codec_delivery(message, subscriber, delivery_id))
            return None
        try:
            request = signed_request(app, message, subscriber, body, delivery_id)
        except Exception as exc:
            self._result(i).record(app, signing_failure(message, subscriber, delivery_id, exc))
            return None
        return _Ready(wire, request)

    def _serve(self, lane: _Lane, slow: bool, report: Callable[[_Outcome], None]) -> None:
        """Attempt one endpoint's deliveries in order; report each outcome, and the rest as
        deferred as soon as the endpoint refuses one (or is slow, unless ``slow``)."""
        key, items = lane.key, lane.items
        app = self.app
        health = app.health
        transport = self.dispatcher.transport
        if not slow and health.is_slow(key):
            report(_Outcome(items, deferred="slow"))
            return
        waited = 0.0
        for n, ready in enumerate(items):
            try:
                while True:
                    admission = admit_request(app, ready.request.subscriber)
                    if admission.allowed:
                        break
                    reason = admission.reason or "circuit_open"
                    wait = IN_FLIGHT_POLL
                    if admission.retry_at is not None and reason != "max_in_flight":
                        wait = max(0.0, admission.retry_at - time.time())
                    if reason == "circuit_open" or waited + wait > SHORT_WAIT:
                        report(_Outcome(items[n:], deferred=reason, retry_at=admission.retry_at))
                        return
                    time.sleep(wait)
                    waited += wait
                message = self.messages[ready.wire[0]]
                lane.begin(n)
                try:
                    delivery = app.deliver(ready.request, transport, message, attempt=ready.wire[3])
                finally:
                    health.release(key)
                    kept = lane.end()
                if not kept:
                    return  # the task gave up on it (and counted it), re-published it and the rest
                status = record_outcome(app, delivery)
            except Exception as exc:
                # Nothing is dropped: the rest go back to the broker for a later attempt.
                logger.exception("Serving the Thorn endpoint %s failed", key)
                report(_Outcome(items[n:], deferred=f"error ({exc})", retry_at=None))
                return
            report(_Outcome([ready], delivery=delivery))
            rest = items[n + 1 :]
            if rest and not slow and status is not None and status.slow_until is not None:
                report(_Outcome(rest, deferred="slow"))
                return

    def _give_up(self, lane: _Lane, n: int, elapsed: float) -> None:
        """Stop waiting for a lane whose attempt ``n`` has taken ``elapsed`` seconds: count it
        as timed out for the endpoint's health now (marking the endpoint slow for every
        worker at once), and re-publish it and the rest to the slow queue."""
        request = lane.items[n].request
        timed_out = Delivery(
            id=request.id,
            event=request.event,
            subscriber=request.subscriber,
            ok=False,
            error=f"no answer after {elapsed:.1f} s (THORN_SLOW_THRESHOLD)",
            duration=elapsed,
            retryable=True,
            timed_out=True,
            url=request.subscriber.url,
            request=request,
        )
        try:
            record_outcome(self.app, timed_out)
        except Exception:
            logger.exception("Recording the slow attempt %s failed", request.id)
        self._handle(_Outcome(lane.items[n:], deferred="slow"))

    def _handle(self, outcome: _Outcome) -> None:
        """Record an outcome on the task's thread: an attempt (and its retry), or deferred
        deliveries re-published with their countdown."""
        app = self.app
        delivery = outcome.delivery
        if delivery is not None:
            wire = outcome.items[0].wire
            message = self.messages[wire[0]]
            delay = None
            if not delivery.ok:
                delay = RetryPolicy.for_message(message, app.settings).next_delay(delivery)
            self._result(wire[0]).record(app, delivery, next_retry_in=delay)
            if delay is not None:
                self._retry(delivery, wire, delay)
            return
        reason = outcome.deferred or "circuit_open"
        countdown = self._countdown(reason, outcome.retry_at)
        slow = reason == "slow"
        self.publish_or_keep([ready.wire for ready in outcome.items], countdown, slow=slow)
        first = outcome.items[0].request
        logger.info(
            "Thorn deliveries %s to %s deferred (%s); next attempt in %.1f s",
            ", ".join(ready.request.id for ready in outcome.items),
            display_url(first.subscriber.url),
            reason.replace("_", " "),
            countdown or 0.0,
        )
        for ready in outcome.items:
            deferred = deferred_delivery(ready.request, reason, outcome.retry_at)
            self._result(ready.wire[0]).record(app, deferred, next_retry_in=countdown or 0.0)

    def _countdown(self, reason: str, retry_at: float | None) -> float | None:
        """Seconds until deferred deliveries are tried again: when the store said (an open
        circuit is looked at again after ``THORN_CIRCUIT_COOLOFF`` at most, in case a probe
        closed it meanwhile); none for a slow endpoint's (they go to the slow queue now); the
        retry backoff after an unexpected error."""
        if reason == "slow":
            return None
        if retry_at is None:
            return RetryPolicy.from_settings(self.app.settings).backoff(1)
        wait = max(0.0, retry_at - time.time())
        if reason == "circuit_open":
            wait = min(wait, self.app.settings.circuit_cooloff)
        return wait

    def _retry(self, delivery: Delivery, wire: WireDelivery, delay: float) -> None:
        i, subscriber_data, delivery_id, attempt = wire
        self.publish_or_keep([[i, subscriber_data, delivery_id, attempt + 1]], countdown=delay)
        logger.info(
            "Thorn delivery %s of %s to %s failed (%s); attempt %d in %.1f s",
            delivery.id,
            delivery.event,
            display_url(delivery.url or delivery.subscriber.url),
            delivery.error,
            attempt + 1,
            delay,
            extra=delivery_extra(delivery),
        )
        if signals.delivery_retrying.receivers:
            try:
                signals.delivery_retrying.send(self.app, delivery=delivery, delay=delay)
            except Exception:
                logger.exception("A receiver of delivery_retrying failed for %s", delivery.id)


@attrs.frozen
class _Ready:
    """A delivery of a task with its signed request."""

    wire: WireDelivery
    request: DeliveryRequest


@attrs.define(eq=False)
class _Lane:
    """One endpoint's deliveries in a task, and the attempt in flight, which the task gives
    up waiting for once it is slow."""

    key: str
    items: list[_Ready] = attrs.Factory(list)
    _lock: threading.Lock = attrs.Factory(threading.Lock)
    _current: int | None = None
    _started: float = 0.0
    _given_up: bool = False

    def begin(self, n: int) -> None:
        """Item ``n`` is being attempted now."""
        with self._lock:
            self._current, self._started = n, time.monotonic()

    def end(self) -> bool:
        """The attempt ended; whether the task still waits for it (it did not give up)."""
        with self._lock:
            self._current = None
            return not self._given_up

    def give_up(self, threshold: float, now: float) -> tuple[int, float] | None:
        """Stop waiting when the attempt in flight has taken over ``threshold`` seconds: the
        index of the first item not done and the seconds it took (None: the lane goes on)."""
        with self._lock:
            if self._current is None or now - self._started <= threshold:
                return None
            self._given_up = True
            return self._current, now - self._started


@attrs.frozen
class _Outcome:
    """What serving an endpoint made of some deliveries: one attempted (``delivery``), or
    several deferred (``deferred`` names the reason; ``retry_at`` the time to try again)."""

    items: list[_Ready]
    delivery: Delivery | None = None
    deferred: str | None = None
    retry_at: float | None = None


#: Seconds before a task that found no configured Thorn app runs again (doubled each time,
#: up to :data:`UNCONFIGURED_RETRY_MAX`); it is retried for as long as it takes.
UNCONFIGURED_RETRY_DELAY = 1.0
UNCONFIGURED_RETRY_MAX = 300.0


def _worker_app(task: Any, argsrepr: str, kwargs: dict[str, Any] | None = None) -> Thorn:
    """The worker's configured Thorn app; without one, the task is retried, never run.

    A worker with no configured app (a Flask worker running tasks outside the app context,
    a worker that never built a ``Thorn``) would otherwise resolve no subscriber, report
    success and deliver nothing. The message goes back to the broker with a countdown (and
    ``kwargs``, when given), as many times as needed, and the error is logged each time.
    """
    try:
        return configured_app(f"The Celery task {task.name}")
    except ImproperlyConfigured as exc:
        retries = int(task.request.retries or 0)
        countdown = min(UNCONFIGURED_RETRY_DELAY * 2**retries, UNCONFIGURED_RETRY_MAX)
        logger.error("%s. Retrying the task in %.0f s (attempt %d).", exc, countdown, retries + 1)
        raise task.retry(
            exc=exc,
            kwargs=kwargs,
            countdown=countdown,
            max_retries=None,
            argsrepr=argsrepr,
            kwargsrepr="{}",
        ) from exc


@shared_task(name=DISPATCH_TASK, max_retries=None, **_TASK_OPTIONS)  # type: ignore[untyped-decorator]
def dispatch_events(self: Any, messages: list[dict[str, Any]], unconfigured: int = 0) -> None:
    """Resolve the subscribers of sent events and deliver to them, or publish them in chunks.

    The worker's Thorn app is :func:`thorn_core.app.configured_app` (configure it at worker
    start-up with the same settings as the web processes; without one the task is retried,
    see :func:`_worker_app`, and ``unconfigured`` counts those runs). A failure to resolve
    subscribers (a database that is down) retries the whole task later, within
    ``THORN_RETRY_MAX`` retries not counting the unconfigured runs; no delivery was made yet.
    """
    repr_ = _events_repr(messages)
    app = _worker_app(self, repr_, {"unconfigured": unconfigured + 1})
    batch = _Batch(self, app, messages)
    try:
        planned = batch.plan()
    except Exception as exc:
        policy = RetryPolicy.from_settings(app.settings)
        retries = int(self.request.retries or 0) - unconfigured
        if not policy.retry or retries >= policy.max_retries:
            raise
        raise self.retry(
            exc=exc,
            countdown=policy.backoff(retries + 1),
            max_retries=policy.max_retries + unconfigured,
            argsrepr=repr_,
            kwargsrepr="{}",
        ) from exc
    app.telemetry.annotate("thorn.subscribers", len(planned))
    chunksize = app.settings.chunksize
    if len(planned) <= chunksize:
        batch.deliver(batch.wires(planned))
    else:
        for chunk in _chunks(planned, chunksize):
            batch.publish_or_keep(batch.wires(chunk))
    batch.finish()


@shared_task(name=DELIVER_TASK, max_retries=None, **_TASK_OPTIONS)  # type: ignore[untyped-decorator]
def deliver_chunk(self: Any, payload: dict[str, Any]) -> None:
    """Send a chunk of deliveries (sorted by URL) in order; retry each failure alone."""
    app = _worker_app(
        self, f"[<Thorn deliveries {', '.join(d[2] for d in payload['deliveries'])}>]"
    )
    batch = _Batch(self, app, payload["messages"])
    batch.deliver(payload["deliveries"], slow=bool(payload.get("slow")))
    batch.finish()


@shared_task(name=RELAY_TASK)  # type: ignore[untyped-decorator]
def relay_outbox(limit: int = 100) -> int:
    """Dispatch the events stored in the current app's outbox, ``limit`` per batch, until
    it is empty; return how many. Schedule it with Celery beat every few seconds.

    Raises:
        ImproperlyConfigured: the worker has no configured Thorn app.
        RuntimeError: the current app has no outbox (``THORN_OUTBOX`` and an adapter).
    """
    return drain(configured_app(f"The Celery task {RELAY_TASK}"), limit=limit)


@shared_task(name=PRUNE_TASK)  # type: ignore[untyped-decorator]
def prune_delivery_log() -> dict[str, int]:
    """Remove what is older than ``THORN_DELIVERY_LOG_RETENTION``: attempts from the
    delivery log (keeping the latest attempt of every unsuccessful delivery) and dispatched
    events from the outbox; return how many of each (``attempts``, ``outbox_events``).
    Schedule it with Celery beat, e.g. hourly.

    Raises:
        ImproperlyConfigured: the worker has no configured Thorn app.
    """
    pruned = prune(configured_app(f"The Celery task {PRUNE_TASK}"))
    return {"attempts": pruned.attempts, "outbox_events": pruned.outbox_events}
