"""The stored-subscriber source: subscriptions in a SQLAlchemy table, for the core."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from thorn_core.subscribers import (
    Subscriber,
    sender_key,
    stored_subscriber,
    subscribers_from_rows,
)

from .models import SubscriberMixin

__all__ = ["SessionFactory", "StoredSubscribers"]

#: Makes a new :class:`~sqlalchemy.orm.Session` (a ``sessionmaker``, or a function).
SessionFactory = Callable[[], Session]


@attrs.define
class StoredSubscribers:
    """Subscribers from ``model``'s table; implements the core's subscriber-source protocols.

    Each call uses a short session of its own, so lookups work after a commit, in worker
    threads and outside requests.
    """

    model: type[SubscriberMixin]
    sessions: SessionFactory

    def matching(
        self, event: str, sender: Any = None, context: Mapping[str, Any] | None = None
    ) -> list[Subscriber]:
        """The active subscribers for ``event`` sent by ``sender``: one indexed query.

        A row that is no valid subscriber (written bypassing the API's checks) is skipped
        with a warning naming it and the reason
        (:func:`~thorn_core.subscribers.subscribers_from_rows`).
        """
        with self.sessions() as session:
            rows = session.scalars(self.model.matching(event, sender_key(sender)))
            return subscribers_from_rows(rows, self.model.to_subscriber)

    def deactivate(self, subscriber: Subscriber, reason: str) -> bool:
        """Set ``active`` to false on the stored subscription (after a 410 Gone, or failing
        too long); False when it was off already, so the signal fires once."""
        with self.sessions() as session, session.begin():
            result = session.execute(
                update(self.model)
                .where(self.model.uuid == subscriber.uuid, self.model.active.is_(True))
                .values(active=False)
                .execution_options(synchronize_session=False)
            )
        return bool(getattr(result, "rowcount", 0))

    def reactivate(self, subscriber: Subscriber) -> bool:
        """Set ``active`` back to true; whether the table holds the subscription."""
        with self.sessions() as session, session.begin():
            result = session.execute(
                update(self.model)
                .where(self.model.uuid == subscriber.uuid)
                .values(active=True)
                .execution_options(synchronize_session=False)
            )
        return bool(getattr(result, "rowcount", 0))

    def get(self, key: Any) -> Subscriber | None:
        """The subscription with this uuid, active or not; None when there is none (or its
        row is no valid subscriber, which is logged)."""
        try:
            wanted = key if isinstance(key, uuid.UUID) else uuid.UUID(str(key))
        except ValueError:
            return None
        with self.sessions() as session:
            row = session.scalars(select(self.model).where(self.model.uuid == wanted)).first()
            return stored_subscriber(row, self.model.to_subscriber)
