"""SQLAlchemy models: subscribers, the delivery log and the outbox, as mixins or ready models.

The mixins work with Flask-SQLAlchemy (``class Subscriber(SubscriberMixin, db.Model)``) and
with plain SQLAlchemy 2.x declarative bases. :class:`Subscriber`, :class:`DeliveryAttempt`
and :class:`OutboxEvent` are ready models on Thorn's own :class:`Base` (tables
``thorn_subscriber``, ``thorn_delivery_attempt`` and ``thorn_outbox``).
"""

from __future__ import annotations

import datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    Uuid,
    or_,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.log import utcnow
from thorn_core.patterns import candidate_patterns
from thorn_core.signing import generate_secret
from thorn_core.subscribers import Subscriber as CoreSubscriber
from thorn_core.subscribers import subscriber_from_row
from thorn_core.subscriptions import (
    MAX_CONTENT_TYPE_LENGTH,
    MAX_ENDPOINT_LENGTH,
    MAX_EVENT_LENGTH,
    MAX_URL_LENGTH,
)
from thorn_core.targeting import MAX_VERSION_LENGTH
from thorn_core.validators import display_url

from . import secret_column

__all__ = [
    "Base",
    "DeliveryAttempt",
    "DeliveryAttemptMixin",
    "OutboxEvent",
    "OutboxEventMixin",
    "Subscriber",
    "SubscriberMixin",
    "coerce_user",
    "declare_tables",
]

#: The table name of the ready model and the mixin's default (Django's is ``thorn_django_*``).
TABLE_NAME = "thorn_subscriber"
#: The table of delivery attempts (the ready model's and the mixin's default).
ATTEMPT_TABLE = "thorn_delivery_attempt"
#: The table of the transactional outbox.
OUTBOX_TABLE = "thorn_outbox"

#: A 64-bit primary key that SQLite still fills in (it autoincrements INTEGER only).
_BigId = BigInteger().with_variant(Integer(), "sqlite")


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
    users table if you like), ``hmac_secret`` (generated) and ``previous_secrets`` (both
    encrypted with ``THORN_SECRET_KEYS``), ``hmac_digest``, ``content_type``,
    ``active``, ``filter`` (a payload filter, JSON), ``version`` (a version pin),
    ``rate_limit``, ``max_in_flight`` and ``endpoint`` (endpoint health, NULL for the site
    defaults), ``created_at`` and ``updated_at``.
    """

    __tablename__: ClassVar[str] = TABLE_NAME

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[UUID] = mapped_column(Uuid, unique=True, default=uuid4)
    event: Mapped[str] = mapped_column(String(MAX_EVENT_LENGTH), index=True)
    url: Mapped[str] = mapped_column(String(MAX_URL_LENGTH))
    #: The current secret; ``previous_secrets`` the older ones still signing (JSON), after a
    #: rotation. Both are encrypted with ``THORN_SECRET_KEYS`` when it is set.
    hmac_secret: Mapped[str] = mapped_column(Text, default=generate_secret)
    previous_secrets: Mapped[str] = mapped_column(Text, default="")
    hmac_digest: Mapped[str] = mapped_column(String(20), default="sha256")
    content_type: Mapped[str] = mapped_column(
        String(MAX_CONTENT_TYPE_LENGTH), default=JSON_CONTENT_TYPE
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The payload filter (SQL NULL for none, not JSON ``null``).
    filter: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True, default=None
    )
    version: Mapped[str | None] = mapped_column(String(MAX_VERSION_LENGTH), nullable=True)
    #: Deliveries per second to the endpoint at most; NULL: ``THORN_RATE_LIMIT``.
    rate_limit: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Deliveries to the endpoint in progress at once at most; NULL: ``THORN_MAX_IN_FLIGHT``.
    max_in_flight: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The endpoint whose health this subscription shares; NULL: the URL's origin.
    endpoint: Mapped[str | None] = mapped_column(String(MAX_ENDPOINT_LENGTH), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
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
            else or_(column.is_(None), column == cls.owner_value(user))
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
        return select(cls).where(column == cls.owner_value(user)).order_by(cls.id)

    @classmethod
    def owner_value(cls, user: Any) -> Any:
        """``user`` (a sender's or user's id) converted for the ``user_id`` column, so that
        queries and new rows compare like with like; None stays None."""
        column = cls.__table__.c.user_id  # type: ignore[attr-defined]
        return coerce_user(column.type, user)

    def to_subscriber(self) -> CoreSubscriber:
        """The core :class:`~thorn_core.Subscriber` value of this row."""
        return subscriber_from_row(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.event!r} -> {display_url(self.url)!r}>"


secret_column.listen(SubscriberMixin)


class DeliveryAttemptMixin:
    """The columns of one delivery attempt (``thorn_core.log.AttemptRecord``).

    Indexed on ``delivery_id``, ``(subscriber_uuid, at)`` and ``at``. A row with
    ``attempt == 0`` is no attempt but the mark a re-enabled subscription leaves: it counts
    as a success for the failure streak and is never listed.
    """

    __tablename__: ClassVar[str] = ATTEMPT_TABLE

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(200))
    subscriber_uuid: Mapped[str] = mapped_column(String(36))
    url: Mapped[str] = mapped_column(String(2048))
    attempt: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    request_headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    response_excerpt: Mapped[str] = mapped_column(Text, default="")
    next_retry_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        table = cls.__tablename__
        return (
            Index(f"ix_{table}_delivery_id", "delivery_id"),
            Index(f"ix_{table}_subscriber_at", "subscriber_uuid", "at"),
            Index(f"ix_{table}_at", "at"),
        )

    def __repr__(self) -> str:
        state = "ok" if self.ok else (self.error or f"HTTP {self.status_code}")
        return f"<{type(self).__name__} {self.delivery_id} #{self.attempt} {state}>"


class OutboxEventMixin:
    """The columns of one stored event of the transactional outbox.

    ``message`` is ``EventMessage.to_dict()``; ``done_at`` is set once the relay has
    dispatched it. ``claimed_by``/``claimed_until`` are the relay's lease: a claimed event is
    not taken again by another relay until the lease runs out. Pending events are found
    through a partial index (``done_at IS NULL``) on PostgreSQL and SQLite.
    """

    __tablename__: ClassVar[str] = OUTBOX_TABLE

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    done_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    claimed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    claimed_until: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        table = cls.__tablename__
        pending = text("done_at IS NULL")
        return (
            Index(
                f"ix_{table}_pending",
                "id",
                postgresql_where=pending,
                sqlite_where=pending,
            ),
            Index(f"ix_{table}_done_at", "done_at"),
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.message.get('event')!r}>"


class Base(DeclarativeBase):
    """Thorn's own declarative base: the ready :class:`Subscriber`, :class:`DeliveryAttempt`
    and :class:`OutboxEvent`."""


class Subscriber(SubscriberMixin, Base):
    """The ready subscriber model, table ``thorn_subscriber`` in :attr:`Base.metadata`."""


class DeliveryAttempt(DeliveryAttemptMixin, Base):
    """The ready delivery-log model, table ``thorn_delivery_attempt``."""


class OutboxEvent(OutboxEventMixin, Base):
    """The ready outbox model, table ``thorn_outbox``."""


def declare_tables(metadata: MetaData, *models: type[Any]) -> list[Table]:
    """Declare the tables of ``models`` in ``metadata`` too, so that one schema holds them all.

    The ready models live on Thorn's own :class:`Base`; an application's models live on
    another base. Copied into the application's metadata, Thorn's tables are created by its
    ``metadata.create_all()`` (Flask-SQLAlchemy's ``db.create_all()``) and generated by Alembic
    autogenerate against that one metadata, with no second ``MetaData`` in
    ``target_metadata`` (which Alembic refuses when both hold a table of the same name, as
    they do when the application declares its own ``thorn_subscriber``). A table whose name
    ``metadata`` already holds is left as it is, so calling this again changes nothing.

    Args:
        metadata: the application's ``MetaData`` (``db.metadata``, ``Base.metadata``).
        models: mapped classes, e.g. ``DeliveryAttempt, OutboxEvent``.

    Returns:
        The tables of ``models`` as ``metadata`` holds them.

    Raises:
        TypeError: a model is not a mapped class with a table.
    """
    tables = []
    for model in models:
        table = getattr(model, "__table__", None)
        if not isinstance(table, Table):
            raise TypeError(f"{model!r} is not a mapped class with a table")
        held = metadata.tables.get(table.key)
        tables.append(held if held is not None else table.to_metadata(metadata))
    return tables
