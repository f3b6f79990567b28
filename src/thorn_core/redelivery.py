"""Redelivery: send a logged delivery again, under its id, with fresh signatures."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .exceptions import ThornError
from .fanout import signed_request
from .log import AttemptRecord
from .message import EventMessage
from .results import SendResult
from .transport import RequestsTransport, Transport

if TYPE_CHECKING:
    from .app import Thorn
    from .delivery import Delivery
    from .subscribers import Subscriber

__all__ = [
    "API_REDELIVERY_LIMIT",
    "RedeliveryError",
    "delivery_summary",
    "redeliver",
    "redeliver_failed",
    "redelivery_summary",
]

#: Deliveries one REST API call redelivers at most (the rest on the next call), so that a
#: request is never held by an unbounded replay.
API_REDELIVERY_LIMIT = 20

#: Headers Thorn sets on every delivery; the rest of a logged request are the sender's extras.
_THORN_HEADERS = ("hook-", "webhook-", "content-type", "content-length", "user-agent", "host")

Progress = Callable[[int, int, "Delivery"], object]


class RedeliveryError(ThornError, LookupError):
    """A delivery cannot be sent again: not in the log, or its subscription is gone or off."""


def delivery_summary(delivery: Delivery) -> dict[str, Any]:
    """What a REST API answers about one redelivered delivery (the same in every adapter)."""
    return {
        "delivery_id": delivery.id,
        "event": delivery.event,
        "attempt": delivery.attempts,
        "ok": delivery.ok,
        "status_code": delivery.status_code,
        "error": delivery.error,
    }


def redelivery_summary(deliveries: Sequence[Delivery]) -> dict[str, Any]:
    """What a REST API answers about a subscription's redelivered deliveries: the counts and
    each one's :func:`delivery_summary` (the same in every adapter)."""
    succeeded = sum(d.ok for d in deliveries)
    return {
        "redelivered": len(deliveries),
        "succeeded": succeeded,
        "failed": len(deliveries) - succeeded,
        "deliveries": [delivery_summary(d) for d in deliveries],
    }


def _extra_headers(record: AttemptRecord) -> dict[str, str]:
    return {
        name: value
        for name, value in record.request_headers.items()
        if not name.lower().startswith(_THORN_HEADERS)
    }


def _active_subscriber(
    app: Thorn, subscriber_uuid: str, *, context: str = "", advice: str = ""
) -> Subscriber:
    """The subscriber ``subscriber_uuid`` if it exists and is active, for a redelivery.

    Raises:
        RedeliveryError: it is gone or deactivated; the message starts with ``context``, and
            the deactivated one ends with ``advice``.
    """
    subscriber = app.find_subscriber(subscriber_uuid)
    if subscriber is None:
        raise RedeliveryError(f"{context}subscription {subscriber_uuid} no longer exists")
    if not subscriber.active:
        raise RedeliveryError(f"{context}subscription {subscriber_uuid} is deactivated{advice}")
    return subscriber


def _redeliver(app: Thorn, record: AttemptRecord, transport: Transport) -> Delivery:
    subscriber = _active_subscriber(
        app,
        record.subscriber_uuid,
        context=f"delivery {record.delivery_id}: ",
        advice="; re-enable it first",
    )
    sent_as = {k.lower(): v for k, v in record.request_headers.items()}.get("content-type")
    if sent_as is not None and sent_as != subscriber.content_type:
        raise RedeliveryError(
            f"delivery {record.delivery_id} was sent as {sent_as}; the subscription now wants "
            f"{subscriber.content_type}"
        )
    settings = app.settings
    message = EventMessage(
        event=record.event,
        data=None,
        headers=_extra_headers(record),
        timeout=settings.event_timeout,
        retry=settings.retry,
        retry_max=settings.retry_max,
        retry_delay=settings.retry_delay,
    )
    request = signed_request(app, message, subscriber, record.body, record.delivery_id)
    delivery = app.deliver(request, transport, message, attempt=record.attempt + 1)
    SendResult(message, state="delivered").record(app, delivery)
    return delivery


def redeliver(app: Thorn, delivery_id: str) -> Delivery:
    """Send one logged delivery again now: same id and body, next attempt number.

    Raises:
        RedeliveryError: the delivery is not in the log, or its subscription is gone or off.
    """
    record = app.delivery_log.latest(delivery_id)
    if record is None:
        raise RedeliveryError(f"delivery {delivery_id} is not in the delivery log")
    transport = RequestsTransport(ca_bundle=app.settings.ca_bundle)
    try:
        return _redeliver(app, record, transport)
    finally:
        transport.close()


def redeliver_failed(
    app: Thorn,
    subscriber_uuid: str,
    since: datetime.datetime | None = None,
    *,
    progress: Progress | None = None,
    limit: int | None = None,
) -> list[Delivery]:
    """Send again every delivery of a subscriber whose latest attempt failed, oldest first.

    ``progress(done, total, delivery)`` is called after each one, for long replays. With
    ``limit``, at most that many are sent (the oldest); call again for the rest.

    Raises:
        RedeliveryError: the subscription is gone or off (nothing is sent then).
    """
    records = app.delivery_log.failed(str(subscriber_uuid), since)
    if limit is not None:
        records = records[:limit]
    _active_subscriber(app, str(subscriber_uuid))
    transport = RequestsTransport(ca_bundle=app.settings.ca_bundle)
    deliveries: list[Delivery] = []
    try:
        for record in records:
            delivery = _redeliver(app, record, transport)
            deliveries.append(delivery)
            if progress is not None:
                progress(len(deliveries), len(records), delivery)
    finally:
        transport.close()
    return deliveries
