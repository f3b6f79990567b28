"""SQLAlchemy subscriber models: :class:`SubscriberMixin` for your base, or the ready one.

The mixin works with Flask-SQLAlchemy (``class Subscriber(SubscriberMixin, db.Model)``) and
with plain SQLAlchemy 2.x declarative bases. :class:`Subscriber` is a ready model on Thorn's
own :class:`Base` (table ``thorn_subscriber``), for applications that add no fields.
"""

from __future__ import annotations

import datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from sqlalchemy import Boolean, DateTime, Select, String, Uuid, or_, select
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.patterns import candidate_patterns
from thorn_core.signing import generate_secret
from thorn_core.subscribers import Subscriber as CoreSubscriber

__all__ = ["Base", "Subscriber", "SubscriberMixin", "coerce_user"]

#: The table name of the ready model and the mixin's default (Django's is ``thorn_django_*``).
TABLE_NAME = "thorn_subscriber"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def coerce_user(column_type: Any, key: Any) -> Any:
    """``key`` (a sender's id) converted to the Python type of the ``user_id`` column."""
    if key is None:
        return None
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return key
    if isinstance(key, python_type):
        return key
    if python_type is UUID:
        return UUID(str(key))
    return python_type(key) if python_type in (int, str) else key


class SubscriberMixin:
    """The columns and queries of a stored subscription; mix it into a declarative model.

    Columns: ``uuid`` (unique), ``event`` (the pattern, indexed), ``url``, ``user_id`` (the
    owner, NULL for none; a string by default, redeclare it with a ``ForeignKey`` to your
    users table if you like), ``hmac_secret`` (generated), ``hmac_digest``, ``content_type``,
    ``active``, ``created_at`` and ``updated_at``.
    """

    __tablename__: ClassVar[str] = TABLE_NAME

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[UUID] = mapped_column(Uuid, unique=True, default=uuid4)
    event: Mapped[str] = mapped_column(String(200), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    hmac_secret: Mapped[str] = mapped_column(String(255), default=generate_secret)
    hmac_digest: Mapped[str] = mapped_column(String(20), default="sha256")
    content_type: Mapped[str] = mapped_column(String(100), default=JSON_CONTENT_TYPE)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), default=_now, onupdate=_now
    )

    @declared_attr
    def user_id(cls) -> Mapped[str | None]:
        """The owner's id: the subscription receives only events sent by this user."""
        return mapped_column(String(64), index=True, nullable=True)

    @classmethod
    def matching(cls, event: str, user: Any = None) -> Select[Any]:
        """One indexed query: the active subscriptions whose pattern matches ``event``.

        Owned subscriptions match only when ``user`` (a sender's id) is their owner; those
        without an owner always match.

        Raises:
            InvalidEventName: ``event`` is not a valid event name.
        """
        column = cls.__table__.c.user_id  # type: ignore[attr-defined]
        owner = (
            column.is_(None)
            if user is None
            else or_(column.is_(None), column == coerce_user(column.type, user))
        )
        return (
            select(cls)
            .where(cls.event.in_(candidate_patterns(event)), cls.active.is_(True), owner)
            .order_by(cls.id)
        )

    @classmethod
    def ordered(cls) -> Select[Any]:
        """Every subscription, oldest first."""
        return select(cls).order_by(cls.id)

    @classmethod
    def owned_by(cls, user: Any) -> Select[Any]:
        """Every subscription of ``user`` (an id), newest last."""
        column = cls.__table__.c.user_id  # type: ignore[attr-defined]
        return select(cls).where(column == coerce_user(column.type, user)).order_by(cls.id)

    def to_subscriber(self) -> CoreSubscriber:
        """The core :class:`~thorn_core.Subscriber` value of this row."""
        return CoreSubscriber(
            uuid=self.uuid,
            event=self.event,
            url=self.url,
            user=getattr(self, "user_id", None),
            hmac_secret=self.hmac_secret,
            hmac_digest=self.hmac_digest,
            content_type=self.content_type,
            active=self.active,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.event!r} -> {self.url!r}>"


class Base(DeclarativeBase):
    """Thorn's own declarative base: its metadata holds only the ready :class:`Subscriber`."""


class Subscriber(SubscriberMixin, Base):
    """The ready subscriber model, table ``thorn_subscriber`` in :attr:`Base.metadata`."""
