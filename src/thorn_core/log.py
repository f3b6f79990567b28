"""The delivery log: every attempt of every delivery, kept for replay, audit and health.

Dispatchers record attempts through the app (``SendResult.record``); redelivery reads them
back; the failure streak of each subscriber decides when a dead endpoint is switched off.
The in-memory log is the default; the Django and Flask adapters store attempts in the
user's database.
"""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from .validators import MASK, display_url

if TYPE_CHECKING:
    from .delivery import Delivery

__all__ = [
    "CREDENTIAL_HEADERS",
    "RESPONSE_EXCERPT_BYTES",
    "AttemptRecord",
    "DeliveryLog",
    "FailureStreak",
    "MemoryDeliveryLog",
    "attempt_record",
    "masked_headers",
    "parse_since",
    "prune_expired",
    "public_headers",
    "record_fields",
    "record_from_row",
    "retention_cutoff",
    "utcnow",
]

#: Bytes of a response body kept in the log.
RESPONSE_EXCERPT_BYTES = 1024
#: Request headers that carry credentials (not signatures, which only prove the body): never
#: written to the log, masked in displays, and not sent to another origin after a redirect.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def utcnow() -> datetime.datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.datetime.now(datetime.timezone.utc)


def parse_since(value: str) -> datetime.datetime:
    """An ISO 8601 date or time (a ``since``/``before`` bound) as an aware datetime; one
    without an offset is taken as UTC, one with an offset keeps it.

    Raises:
        ValueError: ``value`` is neither.
    """
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date or time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def retention_cutoff(
    retention: float, *, now: datetime.datetime | None = None
) -> datetime.datetime:
    """The time ``retention`` seconds before ``now`` (default: the current time): what is
    older goes when the delivery log and the outbox are pruned."""
    return (now or utcnow()) - datetime.timedelta(seconds=retention)


def public_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` without credentials, for the log."""
    return {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with the values of credentials masked, for displays (admin, APIs).

    Signatures (``Hook-HMAC``, ``webhook-signature``) are shown: they prove one body, and
    the receiver saw them anyway.
    """
    return {k: MASK if k.lower() in CREDENTIAL_HEADERS else v for k, v in headers.items()}


@attrs.frozen(kw_only=True)
class AttemptRecord:
    """One attempt of one delivery, as the log keeps it.

    ``body`` and ``request_headers`` are what was sent (credentials removed), so that the
    delivery can be sent again; the subscriber's secret is never kept.
    """

    delivery_id: str
    event: str
    subscriber_uuid: str
    url: str
    attempt: int
    ok: bool
    retryable: bool
    status_code: int | None
    error: str | None
    duration: float
    request_headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    body: bytes = attrs.field(default=b"", repr=False)
    response_excerpt: str = attrs.field(default="", repr=False)
    next_retry_at: datetime.datetime | None = None
    at: datetime.datetime = attrs.field(factory=utcnow)


def record_fields(record: AttemptRecord) -> dict[str, Any]:
    """An attempt as column values (headers as a plain dict), for database-backed logs."""
    fields = attrs.asdict(record, recurse=False)
    fields["request_headers"] = dict(record.request_headers)
    return fields


def record_from_row(
    row: Any, *, at: datetime.datetime, next_retry_at: datetime.datetime | None
) -> AttemptRecord:
    """The attempt of a database row with the columns of :func:`record_fields`; the caller
    gives the times, made timezone-aware the way its database needs."""
    return AttemptRecord(
        delivery_id=row.delivery_id,
        event=row.event,
        subscriber_uuid=str(row.subscriber_uuid),
        url=row.url,
        attempt=row.attempt,
        ok=row.ok,
        retryable=row.retryable,
        status_code=row.status_code,
        error=row.error,
        duration=row.duration,
        request_headers=dict(row.request_headers or {}),
        body=bytes(row.body or b""),
        response_excerpt=row.response_excerpt or "",
        next_retry_at=next_retry_at,
        at=at,
    )


def attempt_record(delivery: Delivery, *, next_retry_in: float | None = None) -> AttemptRecord:
    """The log record of a delivery's latest attempt."""
    request = delivery.request
    now = utcnow()
    return AttemptRecord(
        delivery_id=delivery.id,
        event=delivery.event,
        subscriber_uuid=str(delivery.subscriber.uuid),
        url=display_url(delivery.url or delivery.subscriber.url),
        attempt=delivery.attempts,
        ok=delivery.ok,
        retryable=delivery.retryable,
        status_code=delivery.status_code,
        error=delivery.error,
        duration=delivery.duration,
        request_headers=public_headers(request.headers) if request is not None else {},
        body=request.body if request is not None else b"",
        response_excerpt=delivery.response_body[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace"),
        next_retry_at=None
        if next_retry_in is None
        else now + datetime.timedelta(seconds=next_retry_in),
        at=now,
    )


@attrs.frozen
class FailureStreak:
    """Consecutive failed attempts of one subscriber since its last success."""

    count: int = 0
    since: datetime.datetime | None = None


@runtime_checkable
class DeliveryLog(Protocol):
    """Where attempts are kept. The in-memory log, and the adapters' models, implement it."""

    def record(self, record: AttemptRecord) -> FailureStreak:
        """Keep an attempt; return the subscriber's failure streak after it."""
        ...

    def latest(self, delivery_id: str) -> AttemptRecord | None:
        """The latest attempt of a delivery, if the log has it."""
        ...

    def attempts(self, delivery_id: str) -> list[AttemptRecord]:
        """Every attempt of a delivery, oldest first."""
        ...

    def failed(
        self, subscriber_uuid: str, since: datetime.datetime | None = None
    ) -> list[AttemptRecord]:
        """The latest attempt of each delivery of a subscriber that has not succeeded,
        oldest first; only deliveries attempted at or after ``since`` when given."""
        ...

    def reset_streak(self, subscriber_uuid: str) -> None:
        """Forget a subscriber's failures (it was re-enabled)."""
        ...

    def prune(self, before: datetime.datetime) -> int:
        """Remove attempts older than ``before``, keeping the latest attempt of every
        delivery that has not succeeded; return how many were removed."""
        ...


class MemoryDeliveryLog:
    """A per-process log in memory, bounded to ``max_deliveries`` (oldest dropped first)."""

    def __init__(self, max_deliveries: int = 1_000) -> None:
        self.max_deliveries = max_deliveries
        self._lock = threading.Lock()
        self._deliveries: OrderedDict[str, list[AttemptRecord]] = OrderedDict()
        self._streaks: dict[str, FailureStreak] = {}

    def record(self, record: AttemptRecord) -> FailureStreak:
        """Keep an attempt; a success resets the subscriber's streak."""
        with self._lock:
            attempts = self._deliveries.setdefault(record.delivery_id, [])
            attempts.append(record)
            self._deliveries.move_to_end(record.delivery_id)
            while len(self._deliveries) > self.max_deliveries:
                self._deliveries.popitem(last=False)
            if record.ok:
                streak = FailureStreak()
            else:
                before = self._streaks.get(record.subscriber_uuid, FailureStreak())
                streak = FailureStreak(before.count + 1, before.since or record.at)
            self._streaks[record.subscriber_uuid] = streak
            return streak

    def latest(self, delivery_id: str) -> AttemptRecord | None:
        """The latest attempt of a delivery."""
        with self._lock:
            attempts = self._deliveries.get(delivery_id)
            return attempts[-1] if attempts else None

    def attempts(self, delivery_id: str) -> list[AttemptRecord]:
        """Every attempt of a delivery, oldest first."""
        with self._lock:
            return list(self._deliveries.get(delivery_id, ()))

    def failed(
        self, subscriber_uuid: str, since: datetime.datetime | None = None
    ) -> list[AttemptRecord]:
        """The latest attempt of each unsuccessful delivery of a subscriber."""
        with self._lock:
            latest = [attempts[-1] for attempts in self._deliveries.values() if attempts]
        return sorted(
            (
                r
                for r in latest
                if r.subscriber_uuid == subscriber_uuid
                and not r.ok
                and (since is None or r.at >= since)
            ),
            key=lambda r: r.at,
        )

    def streak(self, subscriber_uuid: str) -> FailureStreak:
        """A subscriber's current failure streak."""
        with self._lock:
            return self._streaks.get(subscriber_uuid, FailureStreak())

    def reset_streak(self, subscriber_uuid: str) -> None:
        """Forget a subscriber's failures."""
        with self._lock:
            self._streaks.pop(subscriber_uuid, None)

    def prune(self, before: datetime.datetime) -> int:
        """Drop attempts older than ``before``, keeping the latest of unsuccessful deliveries."""
        removed = 0
        with self._lock:
            for delivery_id in list(self._deliveries):
                attempts = self._deliveries[delivery_id]
                keep_last = not attempts[-1].ok
                kept = [
                    r
                    for i, r in enumerate(attempts)
                    if r.at >= before or (keep_last and i == len(attempts) - 1)
                ]
                removed += len(attempts) - len(kept)
                if kept:
                    self._deliveries[delivery_id] = kept
                else:
                    del self._deliveries[delivery_id]
        return removed


def prune_expired(
    log: DeliveryLog, retention: float, *, now: datetime.datetime | None = None
) -> int:
    """Prune attempts older than ``retention`` seconds (``THORN_DELIVERY_LOG_RETENTION``)
    from ``log``; the latest attempt of an unsuccessful delivery stays. Returns how many went.

    The relays of the adapters (a Celery task, a command) call this.
    """
    return log.prune(retention_cutoff(retention, now=now))
