"""The delivery log in a SQLAlchemy table: :class:`SQLAlchemyDeliveryLog`.

It implements the core's :class:`~thorn_core.log.DeliveryLog` on a
:class:`~thorn_flask.models.DeliveryAttemptMixin` model (the ready
:class:`~thorn_flask.models.DeliveryAttempt` by default). Every call uses a short session
of its own, never the application's, which may be in the middle of a transaction.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import delete, false, func, select, true
from sqlalchemy.orm import Session, aliased

from thorn_core.exceptions import ImproperlyConfigured
from thorn_core.log import AttemptRecord, FailureStreak, record_fields, record_from_row, utcnow

from .models import DeliveryAttempt, DeliveryAttemptMixin
from .store import SessionFactory

__all__ = ["SQLAlchemyDeliveryLog", "aware"]

#: Rows deleted per statement by :meth:`SQLAlchemyDeliveryLog.prune`.
PRUNE_BATCH = 500
#: The ``event`` of the mark a re-enabled subscription leaves (``attempt`` 0).
REACTIVATED = "thorn.reactivated"


def aware(value: datetime.datetime | None) -> datetime.datetime | None:
    """``value`` as an aware UTC datetime (SQLite gives naive ones back)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=datetime.timezone.utc)


class SQLAlchemyDeliveryLog:
    """Delivery attempts in ``model``'s table, written in sessions from ``sessions``.

    The Flask extension builds one for each app whose subscribers are in SQLAlchemy (or
    whose ``THORN_DELIVERY_LOG`` names this class) and binds it to the app's database; made
    with no arguments (as ``THORN_DELIVERY_LOG`` does) it must be bound with :meth:`bind`
    before use.

    The failure streak is computed by the database on every failed attempt: the failed
    attempts of the subscriber after its latest success (or re-enabling), counted, and the
    time of the first. A success needs no query.
    """

    def __init__(
        self,
        model: type[DeliveryAttemptMixin] = DeliveryAttempt,
        sessions: SessionFactory | None = None,
    ) -> None:
        self.model = model
        self.sessions = sessions

    def bind(
        self, sessions: SessionFactory, model: type[DeliveryAttemptMixin] | None = None
    ) -> None:
        """Use ``sessions`` (and ``model``) from now on; the extension calls it."""
        self.sessions = sessions
        if model is not None:
            self.model = model

    def _session(self) -> Session:
        if self.sessions is None:
            raise ImproperlyConfigured(
                "SQLAlchemyDeliveryLog has no database: set it up through thorn_flask.Thorn "
                "(db= or session_factory=) or call bind(sessions)"
            )
        return self.sessions()

    # -- the protocol ----------------------------------------------------------------------

    def record(self, record: AttemptRecord) -> FailureStreak:
        """Insert the attempt; for a failure, return the streak the database counts."""
        row = self.model(**record_fields(record))
        with self._session() as session, session.begin():
            session.add(row)
            if record.ok:
                return FailureStreak()
            session.flush()
            return self._streak(session, record.subscriber_uuid)

    def _streak(self, session: Session, subscriber_uuid: str) -> FailureStreak:
        """One statement: failures after the latest success (or mark) of the subscriber."""
        model = self.model
        success = aliased(model)
        latest_success = (
            select(func.max(success.at))
            .where(success.subscriber_uuid == subscriber_uuid, success.ok == true())
            .scalar_subquery()
        )
        query = select(func.count(), func.min(model.at)).where(
            model.subscriber_uuid == subscriber_uuid,
            model.ok == false(),
            (model.at > latest_success) | latest_success.is_(None),
        )
        count, since = session.execute(query).one()
        return FailureStreak(int(count), aware(since))

    def streak(self, subscriber_uuid: str) -> FailureStreak:
        """A subscriber's current failure streak."""
        with self._session() as session:
            return self._streak(session, str(subscriber_uuid))

    def latest(self, delivery_id: str) -> AttemptRecord | None:
        """The latest attempt of a delivery."""
        model = self.model
        with self._session() as session:
            row = session.scalars(
                select(model)
                .where(model.delivery_id == delivery_id, model.attempt > 0)
                .order_by(model.id.desc())
                .limit(1)
            ).first()
            return None if row is None else _record(row)

    def attempts(self, delivery_id: str) -> list[AttemptRecord]:
        """Every attempt of a delivery, oldest first."""
        model = self.model
        with self._session() as session:
            rows = session.scalars(
                select(model)
                .where(model.delivery_id == delivery_id, model.attempt > 0)
                .order_by(model.id)
            )
            return [_record(row) for row in rows]

    def failed(
        self, subscriber_uuid: str, since: datetime.datetime | None = None
    ) -> list[AttemptRecord]:
        """The latest attempt of each delivery of the subscriber that has not succeeded."""
        model = self.model
        subscriber_uuid = str(subscriber_uuid)
        other = aliased(model)
        latest_ids = (
            select(func.max(other.id))
            .where(other.subscriber_uuid == subscriber_uuid)
            .group_by(other.delivery_id)
        )
        query = select(model).where(
            model.subscriber_uuid == subscriber_uuid,
            model.ok == false(),
            model.id.in_(latest_ids),
        )
        if since is not None:
            query = query.where(model.at >= since)
        with self._session() as session:
            rows = session.scalars(query.order_by(model.at, model.id))
            return [_record(row) for row in rows]

    def reset_streak(self, subscriber_uuid: str) -> None:
        """Leave the re-enabled mark: the streak counts failures after it only."""
        with self._session() as session, session.begin():
            session.add(
                self.model(  # type: ignore[call-arg]
                    delivery_id=f"reactivated-{uuid.uuid4().hex}",
                    event=REACTIVATED,
                    subscriber_uuid=str(subscriber_uuid),
                    url="",
                    attempt=0,
                    ok=True,
                    retryable=False,
                    duration=0.0,
                    request_headers={},
                    body=b"",
                    response_excerpt="",
                    at=utcnow(),
                )
            )

    def prune(self, before: datetime.datetime) -> int:
        """Delete attempts older than ``before``; return how many.

        Kept whatever their age: the latest attempt of every delivery that has not
        succeeded (it can still be redelivered), and each subscriber's latest success or
        re-enabled mark (without it, older kept failures would count in its streak again).
        """
        model = self.model
        newer = aliased(model)
        later_attempt = select(newer.id).where(
            newer.delivery_id == model.delivery_id, newer.id > model.id
        )
        later_success = select(newer.id).where(
            newer.subscriber_uuid == model.subscriber_uuid, newer.ok == true(), newer.id > model.id
        )
        doomed = select(model.id).where(
            model.at < before,
            # a failure is kept while it is its delivery's latest attempt
            (model.ok == true()) | later_attempt.exists(),
            # a success is kept while it is its subscriber's latest one
            (model.ok == false()) | later_success.exists(),
        )
        removed = 0
        with self._session() as session, session.begin():
            ids = list(session.scalars(doomed))
            for start in range(0, len(ids), PRUNE_BATCH):
                batch = ids[start : start + PRUNE_BATCH]
                session.execute(
                    delete(model)
                    .where(model.id.in_(batch))
                    .execution_options(synchronize_session=False)
                )
                removed += len(batch)
        return removed

    # -- beyond the protocol ---------------------------------------------------------------

    def for_subscriber(
        self, subscriber_uuid: str, *, limit: int = 50, failed_only: bool = False
    ) -> list[AttemptRecord]:
        """A subscriber's latest ``limit`` attempts, newest first (for the API)."""
        model = self.model
        query = select(model).where(
            model.subscriber_uuid == str(subscriber_uuid), model.attempt > 0
        )
        if failed_only:
            query = query.where(model.ok == false())
        with self._session() as session:
            rows = session.scalars(query.order_by(model.at.desc(), model.id.desc()).limit(limit))
            return [_record(row) for row in rows]

    def __repr__(self) -> str:
        return f"<SQLAlchemyDeliveryLog {self.model.__tablename__}>"


def _record(row: Any) -> AttemptRecord:
    """The core's record of a row."""
    return record_from_row(
        row, at=aware(row.at) or utcnow(), next_retry_at=aware(row.next_retry_at)
    )
