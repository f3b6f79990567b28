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

Both are ``acks_late`` and ``reject_on_worker_lost``: a worker that dies mid-delivery leaves
the message on the broker, and another worker delivers it again (at least once).

Two maintenance tasks are meant for Celery beat (see docs/celery.md):

- ``thorn.relay_outbox`` dispatches the events stored in the outbox (``THORN_OUTBOX``).
- ``thorn.prune_delivery_log`` removes attempts older than ``THORN_DELIVERY_LOG_RETENTION``,
  and the outbox's events dispatched before then.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Any

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
from ..delivery import Delivery
from ..fanout import (
    delivery_id_for,
    encode_body,
    no_codec_delivery,
    resolve_subscribers,
    signed_request,
    signing_failure,
    unsent_delivery,
)
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

    @classmethod
    def check(cls, settings: Settings) -> None:
        """Fail at start-up (``Thorn(...)``) when the Celery app cannot be used.

        Raises:
            ImproperlyConfigured: ``THORN_CELERY_APP`` is invalid or its app has no broker.
        """
        _check_broker(celery_app_for(settings))

    def route(self) -> dict[str, Any]:
        """Publishing options: ``THORN_CELERY_QUEUE`` when set, else Celery's own routing."""
        queue = self.app.settings.celery_queue
        return {"queue": queue} if queue else {}

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

    def close(self) -> None:
        """Close this process's HTTP sessions, if a worker task opened any."""
        with self._lock:
            transport, self._transport = self._transport, None
            owned = self._transport_pid == os.getpid()
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
        #: Tasks that could not be published (a broker blip): (deliveries, countdown).
        self._unpublished: list[tuple[list[WireDelivery], float | None]] = []

    def publish(self, deliveries: Sequence[WireDelivery], countdown: float | None = None) -> None:
        """Publish ``deliveries`` as one ``thorn.deliver`` task, with the messages they need."""
        used = sorted({d[0] for d in deliveries})
        index = {old: new for new, old in enumerate(used)}
        payload = {
            "messages": [self.raw[i] for i in used],
            "deliveries": [[index[d[0]], *d[1:]] for d in deliveries],
        }
        self.task.app.send_task(
            DELIVER_TASK,
            args=[payload],
            countdown=countdown,
            serializer="json",
            ignore_result=True,
            argsrepr=f"[<Thorn deliveries {', '.join(d[2] for d in deliveries)}>]",
            kwargsrepr="{}",
            headers=self.app.telemetry.task_headers(),
            **self.dispatcher.route(),
        )

    def publish_or_keep(
        self, deliveries: Sequence[WireDelivery], countdown: float | None = None
    ) -> None:
        """Publish, or keep the deliveries for :meth:`finish` when the broker refuses."""
        try:
            self.publish(deliveries, countdown)
        except Exception:
            logger.exception("Publishing Thorn deliveries failed; trying again after the chunk")
            self._unpublished.append((list(deliveries), countdown))

    def finish(self) -> None:
        """Publish what could not be published during the task, or requeue the task.

        Nothing is dropped: when the broker still refuses, the task's own message is
        requeued (``Reject(requeue=True)``), so its deliveries are made again under the same
        ids (receivers deduplicate on ``Hook-Delivery``).
        """
        pending, self._unpublished = self._unpublished, []
        for deliveries, countdown in pending:
            try:
                self.publish(deliveries, countdown)
            except Exception as exc:
                raise Reject(
                    f"cannot publish {len(deliveries)} Thorn deliveries: {exc}", requeue=True
                ) from exc

    def plan(self) -> list[WireDelivery]:
        """Resolve every message's subscribers; the deliveries sorted by URL (hosts together)."""
        planned: list[tuple[str, WireDelivery]] = []
        for i, message in enumerate(self.messages):
            for subscriber in resolve_subscribers(self.app, message):
                wire = [i, subscriber.as_dict(), delivery_id_for(message, subscriber), 1]
                planned.append((subscriber.url, wire))
        planned.sort(key=lambda item: item[0])
        return [wire for _, wire in planned]

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

    def deliver(self, deliveries: Sequence[WireDelivery]) -> None:
        """Send each delivery in order, on this thread's session; schedule retries of failures."""
        app = self.app
        transport = self.dispatcher.transport
        for wire in deliveries:
            i, subscriber_data, delivery_id, attempt = wire
            message = self.messages[i]
            subscriber = Subscriber.from_dict(subscriber_data)
            if attempt > 1:  # a retry signs with the secrets live now (a rotation since)
                subscriber = current_secrets(app, subscriber)
            try:
                body = self._body(i, subscriber.content_type)
            except SerializationError as exc:
                failed = unsent_delivery(message, subscriber, delivery_id, str(exc), exc)
                self._result(i).record(app, failed)
                continue
            if body is None:
                self._result(i).record(app, no_codec_delivery(message, subscriber, delivery_id))
                continue
            try:
                request = signed_request(app, message, subscriber, body, delivery_id)
            except Exception as exc:
                self._result(i).record(app, signing_failure(message, subscriber, delivery_id, exc))
                continue
            delivery = app.deliver(request, transport, message, attempt=attempt)
            delay = None
            if not delivery.ok:
                delay = RetryPolicy.for_message(message, app.settings).next_delay(delivery)
            self._result(i).record(app, delivery, next_retry_in=delay)
            if delay is not None:
                self._retry(delivery, wire, delay)

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
        batch.deliver(planned)
    else:
        for chunk in _chunks(planned, chunksize):
            batch.publish_or_keep(chunk)
    batch.finish()


@shared_task(name=DELIVER_TASK, max_retries=None, **_TASK_OPTIONS)  # type: ignore[untyped-decorator]
def deliver_chunk(self: Any, payload: dict[str, Any]) -> None:
    """Send a chunk of deliveries (sorted by URL) in order; retry each failure alone."""
    app = _worker_app(
        self, f"[<Thorn deliveries {', '.join(d[2] for d in payload['deliveries'])}>]"
    )
    batch = _Batch(self, app, payload["messages"])
    batch.deliver(payload["deliveries"])
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
