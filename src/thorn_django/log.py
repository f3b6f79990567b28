"""The delivery log in the project's database (``thorn_django.log:DjangoDeliveryLog``).

It is the default when ``thorn_django`` is installed and ``THORN_DELIVERY_LOG`` is not set
(``THORN_DELIVERY_LOG = None`` keeps the core's in-memory log). Rows are
:class:`~thorn_django.models.DeliveryAttempt`; failure streaks are counted by the database.
"""

from __future__ import annotations

import contextlib
import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, models, router, transaction
from django.db.models import Count, Exists, Min, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from thorn_core.log import AttemptRecord, FailureStreak, record_fields, record_from_row, utcnow

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from .models import DeliveryAttempt

__all__ = ["DjangoDeliveryLog", "attempt_from_row"]

#: Older than any attempt: the streak boundary of a subscriber without success or reset.
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
#: Rows removed per ``DELETE`` by :meth:`DjangoDeliveryLog.prune`.
_PRUNE_BATCH = 5_000


def _to_db(value: datetime.datetime | None) -> datetime.datetime | None:
    """An aware UTC time as the database wants it (naive local time when ``USE_TZ = False``)."""
    if value is None or settings.USE_TZ:
        return value
    return timezone.make_naive(value, timezone.get_default_timezone())


def _from_db(value: datetime.datetime | None) -> datetime.datetime | None:
    """A time read from the database, aware and in UTC."""
    if value is None:
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value.astimezone(datetime.timezone.utc)


def attempt_from_row(row: DeliveryAttempt) -> AttemptRecord:
    """The core :class:`~thorn_core.log.AttemptRecord` of a stored attempt."""
    at = _from_db(row.at)
    assert at is not None
    return record_from_row(row, at=at, next_retry_at=_from_db(row.next_retry_at))


def _later(same: str, **match: Any) -> Exists:
    """Whether an attempt with the outer row's ``same`` field (and ``match``) came later."""
    from .models import DeliveryAttempt

    return Exists(
        DeliveryAttempt.objects.filter(**{same: OuterRef(same)}, **match).filter(
            Q(at__gt=OuterRef("at")) | Q(at=OuterRef("at"), pk__gt=OuterRef("pk"))
        )
    )


class DjangoDeliveryLog:
    """The :class:`~thorn_core.log.DeliveryLog` on the ``DeliveryAttempt`` model.

    Args:
        using: the database alias; by default the router's choice for ``DeliveryAttempt``.

    Writing an attempt inside a transaction of the caller goes through a savepoint, so that
    a failure to log never breaks the caller's transaction (the core logs it and goes on);
    outside one, the insert and the streak query are two autocommitted statements.
    """

    def __init__(self, using: str | None = None) -> None:
        self.using = using

    def _db(self, write: bool = False) -> str:
        from .models import DeliveryAttempt

        if self.using is not None:
            return self.using
        route = router.db_for_write if write else router.db_for_read
        return route(DeliveryAttempt) or "default"

    def _attempts(self, write: bool = False) -> QuerySet[DeliveryAttempt]:
        from .models import DeliveryAttempt

        return DeliveryAttempt.objects.using(self._db(write))

    def record(self, record: AttemptRecord) -> FailureStreak:
        """Store an attempt; return the subscriber's streak, counted by one indexed query.

        The streak is the failed attempts after the subscriber's latest success and after
        its latest reset (:meth:`reset_streak`), with the time of the first of them.
        """
        from .models import DeliveryAttempt, FailureReset

        using = self._db(write=True)
        # A savepoint only inside the caller's transaction; otherwise each statement commits.
        in_transaction = transaction.get_connection(using).in_atomic_block
        with transaction.atomic(using=using) if in_transaction else contextlib.nullcontext():
            DeliveryAttempt.objects.using(using).create(
                **{
                    **record_fields(record),
                    "next_retry_at": _to_db(record.next_retry_at),
                    "at": _to_db(record.at),
                }
            )
            if record.ok:
                return FailureStreak()
            subscriber = record.subscriber_uuid
            attempts = DeliveryAttempt.objects.using(using).filter(subscriber_uuid=subscriber)
            epoch = Value(_to_db(_EPOCH), output_field=models.DateTimeField())
            last_success = attempts.filter(ok=True).order_by("-at").values("at")[:1]
            resets = FailureReset.objects.using(using).filter(subscriber_uuid=subscriber)
            last_reset = resets.values("at")[:1]
            streak = (
                attempts.filter(ok=False)
                .filter(at__gt=Coalesce(Subquery(last_success), epoch))
                .filter(at__gt=Coalesce(Subquery(last_reset), epoch))
                .aggregate(count=Count("pk"), since=Min("at"))
            )
        return FailureStreak(streak["count"], _from_db(streak["since"]))

    def latest(self, delivery_id: str) -> AttemptRecord | None:
        """The latest attempt of a delivery."""
        row = self._attempts().filter(delivery_id=delivery_id).order_by("-at", "-pk").first()
        return None if row is None else attempt_from_row(row)

    def attempts(self, delivery_id: str) -> list[AttemptRecord]:
        """Every attempt of a delivery, oldest first."""
        rows = self._attempts().filter(delivery_id=delivery_id).order_by("at", "pk")
        return [attempt_from_row(row) for row in rows]

    def failed(
        self, subscriber_uuid: str, since: datetime.datetime | None = None
    ) -> list[AttemptRecord]:
        """The latest attempt of each delivery of a subscriber that has not succeeded."""
        rows = self._attempts().filter(subscriber_uuid=subscriber_uuid, ok=False)
        if since is not None:
            rows = rows.filter(at__gte=_to_db(since))
        rows = rows.exclude(_later("delivery_id")).order_by("at", "pk")
        return [attempt_from_row(row) for row in rows]

    def reset_streak(self, subscriber_uuid: str) -> None:
        """Start the subscriber's streak again now (re-enabled, or switched off)."""
        from .models import FailureReset

        using = self._db(write=True)
        at = _to_db(utcnow())
        for _ in range(2):
            try:
                with transaction.atomic(using=using):
                    FailureReset.objects.using(using).update_or_create(
                        subscriber_uuid=subscriber_uuid, defaults={"at": at}
                    )
                return
            except IntegrityError:  # a concurrent reset created the row first: update it
                continue

    def prune(self, before: datetime.datetime) -> int:
        """Remove attempts older than ``before``; return how many were removed.

        Kept whatever their age: the latest attempt of every delivery that has not
        succeeded (it can still be redelivered), and each subscriber's latest success (the
        failure streak counts from it). Deletes in batches of a few thousand rows.
        """
        old = (
            self._attempts(write=True)
            .filter(at__lt=_to_db(before))
            .exclude(Q(ok=False) & ~_later("delivery_id"))
            .exclude(Q(ok=True) & ~_later("subscriber_uuid", ok=True))
        )
        removed = 0
        while True:
            batch = list(old.order_by().values_list("pk", flat=True)[:_PRUNE_BATCH])
            if not batch:
                return removed
            deleted, _ = self._attempts(write=True).filter(pk__in=batch).delete()
            removed += deleted

    def __repr__(self) -> str:
        return f"<DjangoDeliveryLog using={self.using!r}>"
