"""The stored-subscriber source: subscriptions in a SQLAlchemy table, for the core."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from thorn_core.encryption import UnreadableSecret
from thorn_core.exceptions import InvalidSubscriber
from thorn_core.rotation import DEFAULT_GRACE, rotate_secret
from thorn_core.secretset import SecretSet
from thorn_core.subscribers import (
    Subscriber,
    sender_key,
    stored_subscriber,
    subscribers_from_rows,
)

from .models import SubscriberMixin
from .secret_column import stored

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

    def save_secrets(self, subscriber: Subscriber, secrets: SecretSet) -> None:
        """Write the current and older secrets of ``subscriber`` (encrypted when
        ``THORN_SECRET_KEYS`` is set); the :class:`~thorn_core.rotation.SecretStore` side.

        Raises:
            thorn_core.InvalidSubscriber: no row has the subscriber's uuid.
        """
        with self.sessions() as session, session.begin():
            self._write_secrets(session, subscriber.uuid, secrets)

    def _write_secrets(self, session: Session, key: uuid.UUID, secrets: SecretSet) -> None:
        result = session.execute(
            update(self.model)
            .where(self.model.uuid == key)
            .values(
                hmac_secret=stored(secrets.current),
                previous_secrets=stored(secrets.previous_json()),
            )
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            raise InvalidSubscriber(f"no stored subscriber {key}")

    def rotate(self, key: Any, grace: Any = DEFAULT_GRACE) -> Subscriber:
        """Rotate the secret of the subscription ``key`` (a uuid) under a row lock; the
        rotated subscriber, whose ``hmac_secret`` is the new secret.

        Raises:
            thorn_core.InvalidSubscriber: there is no such subscription.
            thorn_core.exceptions.InvalidRotation: a bad ``grace``; nothing is written.
            thorn_core.exceptions.SecretDecryptionError: no key reads the stored secret.
        """
        wanted = key if isinstance(key, uuid.UUID) else uuid.UUID(str(key))
        with self.sessions() as session, session.begin():
            query = select(self.model).where(self.model.uuid == wanted).with_for_update()
            row = session.scalars(query).first()
            if row is None:
                raise InvalidSubscriber(f"no stored subscriber {wanted}")
            store = _SessionStore(self, session)
            return rotate_secret(self.model.to_subscriber(row), grace, store=store)

    def reencrypt(self) -> tuple[int, list[str]]:
        """Rewrite every row's secrets with the newest key of ``THORN_SECRET_KEYS`` (or in
        clear without keys), dropping expired older secrets; the count rewritten and the uuids
        of rows no key reads (left as they are)."""
        done, unreadable = 0, []
        with self.sessions() as session, session.begin():
            for row in session.scalars(self.model.ordered()).all():
                if isinstance(row.hmac_secret, UnreadableSecret) or isinstance(
                    row.previous_secrets, UnreadableSecret
                ):
                    unreadable.append(str(row.uuid))
                    continue
                try:
                    kept = SecretSet(row.hmac_secret, row.previous_secrets or ()).pruned()
                except InvalidSubscriber:
                    kept = ()
                self._write_secrets(session, row.uuid, SecretSet(row.hmac_secret, kept))
                done += 1
        return done, unreadable

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


@attrs.frozen
class _SessionStore:
    """Writes a rotation in the session that holds the row lock."""

    source: StoredSubscribers
    session: Session

    def save_secrets(self, subscriber: Subscriber, secrets: SecretSet) -> None:
        self.source._write_secrets(self.session, subscriber.uuid, secrets)
