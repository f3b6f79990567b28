"""The stored-subscriber source: rows of the subscriber model as core ``Subscriber`` values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from thorn_core.encryption import UnreadableSecret
from thorn_core.exceptions import InvalidSubscriber
from thorn_core.rotation import DEFAULT_GRACE, rotate_secret
from thorn_core.secretset import SecretSet
from thorn_core.subscribers import (
    Subscriber,
    stored_subscriber,
    subscriber_from_row,
    subscribers_from_rows,
)
from thorn_core.telemetry import get_logger

__all__ = ["StoredSubscribers", "subscriber_from_model"]

logger = get_logger(__name__)


def subscriber_from_model(obj: Any) -> Subscriber:
    """The core :class:`~thorn_core.Subscriber` for a row of the subscriber model.

    Raises:
        thorn_core.InvalidSubscriber: the row holds an invalid URL, pattern or field.
    """
    return subscriber_from_row(obj)


class StoredSubscribers:
    """The subscriber source over ``THORN_SUBSCRIBER_MODEL`` (resolved on every call).

    Matching is one indexed query (see ``SubscriberQuerySet.matching``). A row that is not a
    valid subscriber (written without ``full_clean()``) is skipped with a warning naming it
    and the reason (:func:`~thorn_core.subscribers.subscribers_from_rows`).
    """

    def matching(
        self, event: str, sender: Any = None, context: Mapping[str, Any] | None = None
    ) -> list[Subscriber]:
        """The active stored subscribers of ``event`` for ``sender``."""
        from .conf import get_subscriber_model

        model = get_subscriber_model()
        rows = model._default_manager.matching(event, sender)  # type: ignore[attr-defined]
        return subscribers_from_rows(rows, subscriber_from_model)

    def deactivate(self, subscriber: Subscriber, reason: str) -> bool:
        """Set ``active=False`` on the row of ``subscriber`` (after a 410 Gone)."""
        from .conf import get_subscriber_model

        model = get_subscriber_model()
        updated = model._default_manager.filter(uuid=subscriber.uuid, active=True).update(
            active=False
        )
        if updated:
            logger.info("Deactivated subscriber %s: %s", subscriber.uuid, reason)
        return bool(updated)

    def get(self, uuid: Any) -> Subscriber | None:
        """The stored subscriber with ``uuid`` (active or not), or None (also for a row that
        is no valid subscriber, which is logged)."""
        from .conf import get_subscriber_model

        model = get_subscriber_model()
        try:
            row = model._default_manager.filter(uuid=uuid).first()
        except ValidationError:  # not a UUID
            return None
        return stored_subscriber(row, subscriber_from_model)

    def reactivate(self, subscriber: Subscriber) -> bool:
        """Set ``active=True`` on the row of ``subscriber``; whether the row exists.

        The failure streak starts again in the delivery log (the core resets it).
        """
        from .conf import get_subscriber_model

        model = get_subscriber_model()
        rows = model._default_manager.filter(uuid=subscriber.uuid)
        if not rows.exists():
            return False
        if rows.filter(active=False).update(active=True):
            logger.info("Re-enabled subscriber %s", subscriber.uuid)
        return True

    def save_secrets(self, subscriber: Subscriber, secrets: SecretSet) -> None:
        """Write the current and older secrets of ``subscriber`` (encrypted when
        ``THORN_SECRET_KEYS`` is set); the :class:`~thorn_core.rotation.SecretStore` side.

        Raises:
            thorn_core.InvalidSubscriber: no row has the subscriber's uuid.
        """
        from .conf import get_subscriber_model

        model = get_subscriber_model()
        updated = model._default_manager.filter(uuid=subscriber.uuid).update(
            hmac_secret=secrets.current, previous_secrets=secrets.previous_json()
        )
        if not updated:
            raise InvalidSubscriber(f"no stored subscriber {subscriber.uuid}")

    def rotate(self, row: Any, grace: Any = DEFAULT_GRACE) -> Subscriber:
        """Rotate the secret of ``row`` (a model instance) under a row lock; the rotated
        subscriber, whose ``hmac_secret`` is the new secret.

        Raises:
            thorn_core.exceptions.InvalidRotation: a bad ``grace``; nothing is written.
            thorn_core.exceptions.SecretDecryptionError: no key reads the stored secret.
        """
        with transaction.atomic():
            locked = type(row)._default_manager.select_for_update().get(pk=row.pk)
            return rotate_secret(subscriber_from_model(locked), grace, store=self)

    def reencrypt(self) -> tuple[int, list[str]]:
        """Rewrite every row's secrets with the newest key of ``THORN_SECRET_KEYS`` (or in
        clear without keys), dropping expired older secrets; the count rewritten and the uuids
        of rows no key reads (left as they are)."""
        from .conf import get_subscriber_model

        model = get_subscriber_model()
        manager = model._default_manager
        done, unreadable = 0, []
        for row in manager.order_by("pk").iterator():
            if isinstance(row.hmac_secret, UnreadableSecret) or isinstance(
                row.previous_secrets, UnreadableSecret
            ):
                unreadable.append(str(row.uuid))
                continue
            try:
                kept = SecretSet(row.hmac_secret, row.previous_secrets or ()).pruned()
            except InvalidSubscriber:
                kept = ()
            manager.filter(pk=row.pk).update(
                hmac_secret=row.hmac_secret,
                previous_secrets=SecretSet(row.hmac_secret, kept).previous_json() if kept else "",
            )
            done += 1
        return done, unreadable

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredSubscribers)

    def __hash__(self) -> int:
        return hash(StoredSubscribers)

    def __repr__(self) -> str:
        return "<StoredSubscribers>"
