"""The transactional outbox on the project's database (``THORN_OUTBOX = True``).

Events sent inside ``transaction.atomic()`` become :class:`~thorn_django.models.OutboxEvent`
rows of that transaction; the relay (``manage.py thorn_relay``, the ``thorn.relay_outbox``
Celery task or :class:`thorn_core.outbox.OutboxRelay`) dispatches them after commit.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Min, Q
from django.utils import timezone

from thorn_core.message import EventMessage
from thorn_core.outbox import OutboxRelay
from thorn_core.telemetry import get_logger

__all__ = ["DEFAULT_LEASE", "DjangoOutbox", "DjangoOutboxRelay"]

logger = get_logger(__name__)

#: Seconds a claimed batch belongs to one relay; after that it is claimed again.
DEFAULT_LEASE = 300.0


class DjangoOutbox:
    """The :class:`~thorn_core.outbox.Outbox` on the ``OutboxEvent`` model.

    ``claim`` leases the rows it returns for ``lease`` seconds (``claimed_until``,
    ``claimed_by``) in a short transaction of its own; on PostgreSQL it selects them with
    ``FOR UPDATE SKIP LOCKED``, so concurrent relays take different rows at once. A relay
    that dies before ``done`` leaves the lease to expire, and the rows are claimed again:
    at least once, never lost. Keep ``lease`` above the time one batch takes to dispatch,
    or a slow batch is dispatched twice (same delivery ids, so receivers deduplicate it).

    Args:
        using: the database alias; by default the router's choice for ``OutboxEvent``.
            Events are stored only when a transaction is open on that database.
        lease: seconds a claimed batch is reserved for the relay that claimed it.
    """

    def __init__(self, using: str | None = None, *, lease: float = DEFAULT_LEASE) -> None:
        self.using = using
        self.lease = lease

    @property
    def alias(self) -> str:
        """The database the events are stored in."""
        from .models import OutboxEvent

        return self.using or router.db_for_write(OutboxEvent) or "default"

    def add(self, message: EventMessage) -> bool:
        """Store ``message`` in the transaction open on the database; False when none is."""
        from .models import OutboxEvent

        using = self.alias
        connection = transaction.get_connection(using)
        if not connection.in_atomic_block and connection.get_autocommit():
            return False
        OutboxEvent.objects.using(using).create(message=message.to_dict())
        return True

    def claim(self, limit: int) -> list[tuple[Any, EventMessage]]:
        """Lease up to ``limit`` undone events whose lease is free, oldest first."""
        from .models import OutboxEvent

        using = self.alias
        connection = transaction.get_connection(using)
        now = timezone.now()
        token = uuid.uuid4()
        free = Q(done_at__isnull=True) & (Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        with transaction.atomic(using=using):
            candidates = OutboxEvent.objects.using(using).filter(free).order_by("created_at", "pk")
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            ids = list(candidates.values_list("pk", flat=True)[:limit])
            if not ids:
                return []
            # Conditional, so that a relay without SKIP LOCKED (SQLite) never takes a row
            # another one leased between its SELECT and this UPDATE.
            OutboxEvent.objects.using(using).filter(free, pk__in=ids).update(
                claimed_until=now + datetime.timedelta(seconds=self.lease), claimed_by=token
            )
            rows = (
                OutboxEvent.objects.using(using)
                .filter(claimed_by=token, pk__in=ids)
                .order_by("created_at", "pk")
            )
            claimed: list[tuple[Any, EventMessage]] = []
            for row in rows:
                try:
                    claimed.append((row.pk, EventMessage.from_dict(row.message)))
                except Exception:  # left leased: retried after the lease, never dropped
                    logger.exception("Outbox event %s cannot be read; skipping it", row.pk)
            return claimed

    def done(self, ids: Sequence[Any]) -> None:
        """Mark events dispatched (``done_at``); ``thorn_prune`` removes them later."""
        from .models import OutboxEvent

        if ids:
            OutboxEvent.objects.using(self.alias).filter(pk__in=list(ids)).update(
                done_at=timezone.now(), claimed_until=None
            )

    def prune(self, before: datetime.datetime) -> int:
        """Remove events dispatched before ``before``; return how many were removed."""
        from .models import OutboxEvent

        deleted, _ = OutboxEvent.objects.using(self.alias).filter(done_at__lt=before).delete()
        return deleted

    def oldest_pending(self) -> datetime.datetime | None:
        """When the oldest event waiting for the relay was stored; None when none waits
        (read by the ``thorn.outbox.oldest_age`` gauge)."""
        from .models import OutboxEvent

        oldest: datetime.datetime | None = (
            OutboxEvent.objects.using(self.alias)
            .filter(done_at__isnull=True)
            .aggregate(oldest=Min("created_at"))["oldest"]
        )
        return oldest

    def pending(self) -> int:
        """How many stored events wait for the relay."""
        from .models import OutboxEvent

        return OutboxEvent.objects.using(self.alias).filter(done_at__isnull=True).count()

    def __repr__(self) -> str:
        return f"<DjangoOutbox using={self.using!r} lease={self.lease}>"


class DjangoOutboxRelay(OutboxRelay):
    """:class:`thorn_core.outbox.OutboxRelay` for Django: the relay thread closes its own
    database connections when it stops (Django opens one per thread)."""

    def _run(self) -> None:
        try:
            super()._run()
        finally:
            connections.close_all()
