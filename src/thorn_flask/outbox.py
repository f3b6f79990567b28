"""The transactional outbox in a SQLAlchemy table: :class:`SQLAlchemyOutbox`.

With ``THORN_OUTBOX = True`` an event sent while the application's session has a
transaction open is inserted into the outbox table on that session's connection, so it is
committed or rolled back with the application's own changes. The relay
(:func:`thorn_core.outbox.relay`: ``flask thorn relay``, the ``thorn.relay_outbox`` Celery
task, or :class:`thorn_core.outbox.OutboxRelay`) dispatches what was committed.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from thorn_core.log import utcnow
from thorn_core.message import EventMessage
from thorn_core.telemetry import get_logger

from .binding import flushing_session
from .models import OutboxEvent, OutboxEventMixin
from .store import SessionFactory

__all__ = ["DEFAULT_LEASE", "SQLAlchemyOutbox"]

logger = get_logger(__name__)

#: Seconds a claimed event is left to its relay before another relay may take it.
DEFAULT_LEASE = 300.0

#: Returns the application's session in use now (``db.session``), or None.
CurrentSession = Callable[[], Session | None]


class SQLAlchemyOutbox:
    """The core's :class:`~thorn_core.outbox.Outbox` on ``model``'s table.

    Args:
        model: an :class:`~thorn_flask.models.OutboxEventMixin` model (the ready
            :class:`~thorn_flask.models.OutboxEvent` by default).
        sessions: makes Thorn's own short sessions, for claiming and marking done.
        current_session: returns the application's session (Flask-SQLAlchemy's
            ``db.session``); :meth:`add` writes into its transaction.
        lease: seconds a claimed event stays with the relay that claimed it.

    Claiming is a lease, committed at once: ``SELECT ... FOR UPDATE SKIP LOCKED`` (on
    PostgreSQL; SQLite has one writer at a time) picks pending rows, an ``UPDATE`` stamps
    them with a token and ``claimed_until``, and the rows carrying the token are returned.
    No transaction stays open while the events are dispatched; a relay that dies leaves
    its events to be claimed again when the lease runs out (dispatched twice, with the same
    delivery ids).
    """

    def __init__(
        self,
        model: type[OutboxEventMixin] = OutboxEvent,
        sessions: SessionFactory | None = None,
        current_session: CurrentSession | None = None,
        *,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        self.model = model
        self.sessions = sessions
        self.current_session = current_session
        self.lease = lease

    def _own_session(self) -> Session:
        if self.sessions is None:
            raise RuntimeError("SQLAlchemyOutbox has no sessions to claim with")
        return self.sessions()

    def _user_session(self) -> Session | None:
        """The session being flushed (model events), else the application's session."""
        session = flushing_session()
        if session is None and self.current_session is not None:
            session = self.current_session()
        return session

    def add(self, message: EventMessage) -> bool:
        """Insert ``message`` in the transaction of the application's session.

        Returns False when that session has no transaction in progress
        (``session.in_transaction()``), or there is no session: the event is then
        dispatched at once. The row is inserted with a statement on the session's
        connection, so it works during a flush too, and needs no ``session.add``.
        """
        session = self._user_session()
        if session is None or not session.in_transaction():
            return False
        connection = session.connection(bind_arguments={"mapper": self.model})
        connection.execute(
            insert(self.model.__table__),  # type: ignore[attr-defined]
            {"message": message.to_dict(), "created_at": utcnow()},
        )
        return True

    def claim(self, limit: int) -> list[tuple[Any, EventMessage]]:
        """Lease up to ``limit`` pending events, oldest first, and return them."""
        model = self.model
        now = utcnow()
        token = uuid.uuid4().hex
        free = (
            model.done_at.is_(None),
            or_(model.claimed_until.is_(None), model.claimed_until < now),
        )
        with self._own_session() as session, session.begin():
            ids = list(
                session.scalars(
                    select(model.id)
                    .where(*free)
                    .order_by(model.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                return []
            session.execute(
                update(model)
                .where(model.id.in_(ids), *free)
                .values(
                    claimed_by=token, claimed_until=now + datetime.timedelta(seconds=self.lease)
                )
                .execution_options(synchronize_session=False)
            )
            rows = session.execute(
                select(model.id, model.message).where(model.claimed_by == token).order_by(model.id)
            ).all()
        claimed: list[tuple[Any, EventMessage]] = []
        for ident, data in rows:
            try:
                claimed.append((ident, EventMessage.from_dict(data)))
            except Exception:
                logger.exception("Outbox event %s cannot be read; left in the outbox", ident)
        return claimed

    def done(self, ids: Sequence[Any]) -> None:
        """Mark events dispatched (``done_at``)."""
        if not ids:
            return
        model = self.model
        with self._own_session() as session, session.begin():
            session.execute(
                update(model)
                .where(model.id.in_(list(ids)))
                .values(done_at=utcnow(), claimed_until=None)
                .execution_options(synchronize_session=False)
            )

    def oldest_pending(self) -> datetime.datetime | None:
        """When the oldest event waiting to be dispatched was stored; None when none waits
        (read by the ``thorn.outbox.oldest_age`` gauge). A naive time is UTC."""
        model = self.model
        with self._own_session() as session:
            oldest = session.scalar(
                select(func.min(model.created_at)).where(model.done_at.is_(None))
            )
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=datetime.timezone.utc)
        return oldest

    def pending(self) -> int:
        """How many events wait to be dispatched."""
        model = self.model
        with self._own_session() as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(model).where(model.done_at.is_(None))
                )
                or 0
            )

    def prune(self, before: datetime.datetime) -> int:
        """Delete events dispatched before ``before``; return how many."""
        model = self.model
        with self._own_session() as session, session.begin():
            result = session.execute(
                delete(model)
                .where(model.done_at.is_not(None), model.done_at < before)
                .execution_options(synchronize_session=False)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def __repr__(self) -> str:
        return f"<SQLAlchemyOutbox {self.model.__tablename__}>"
