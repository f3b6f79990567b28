"""The transactional outbox: events sent in a database transaction are stored in it, and a
relay dispatches them after commit, so a crash between commit and dispatch loses nothing.

Adapters implement :class:`Outbox` on the user's database (``THORN_OUTBOX = True``); the
relay runs as a Celery task, a command, or the :class:`OutboxRelay` background thread.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from .log import retention_cutoff
from .message import EventMessage
from .results import SendResult
from .telemetry import get_logger

if TYPE_CHECKING:
    from .app import Thorn

__all__ = ["Outbox", "OutboxRelay", "PrunableOutbox", "Pruned", "drain", "prune", "relay"]

logger = get_logger(__name__)


@runtime_checkable
class Outbox(Protocol):
    """Stores sent events in the current transaction. Adapters implement it on their ORM."""

    def add(self, message: EventMessage) -> bool:
        """Store ``message.to_dict()`` in the transaction open now and return True; return
        False when no transaction is open (the event is then dispatched at once).

        Raises:
            SerializationError: from ``to_dict()``, for a message that cannot be encoded.
        """
        ...

    def claim(self, limit: int) -> list[tuple[Any, EventMessage]]:
        """Up to ``limit`` stored events not yet dispatched, oldest first, with their ids.

        Implementations lock what they return (``SELECT ... FOR UPDATE SKIP LOCKED`` or an
        equivalent lease) so that two relays do not take the same events.
        """
        ...

    def done(self, ids: Sequence[Any]) -> None:
        """Mark events dispatched."""
        ...


@runtime_checkable
class PrunableOutbox(Protocol):
    """An outbox that can remove the events it dispatched long ago (the adapters' can)."""

    def prune(self, before: datetime.datetime) -> int:
        """Remove events dispatched before ``before``; return how many."""
        ...


@attrs.frozen
class Pruned:
    """What :func:`prune` removed."""

    #: Delivery attempts removed from the delivery log.
    attempts: int
    #: Dispatched events removed from the outbox.
    outbox_events: int


def prune(app: Thorn, before: datetime.datetime | None = None) -> Pruned:
    """Remove what is older than ``before`` (``THORN_DELIVERY_LOG_RETENTION`` ago by
    default): delivery attempts, except the latest of every delivery that has not
    succeeded, and the outbox's dispatched events (never one still waiting).

    The maintenance commands and the ``thorn.prune_delivery_log`` Celery task call this.
    """
    if before is None:
        before = retention_cutoff(app.settings.delivery_log_retention)
    attempts = app.delivery_log.prune(before)
    outbox = app.outbox
    events = outbox.prune(before) if isinstance(outbox, PrunableOutbox) else 0
    return Pruned(attempts, events)


def relay(app: Thorn, outbox: Outbox | None = None, *, limit: int = 100) -> int:
    """Dispatch up to ``limit`` stored events and mark them done; return how many.

    An event is marked done only after its dispatch: a relay that dies in between
    dispatches it again, with the same message id, hence the same delivery ids.
    """
    outbox = outbox or app.outbox
    if outbox is None:
        raise RuntimeError("this app has no outbox (THORN_OUTBOX and an adapter's outbox)")
    app.telemetry.watch_outbox()
    claimed = outbox.claim(limit)
    if not claimed:
        return 0
    results = [SendResult(message) for _, message in claimed]
    app.dispatch(results)
    outbox.done([ident for ident, _ in claimed])
    return len(claimed)


def drain(app: Thorn, outbox: Outbox | None = None, *, limit: int = 100) -> int:
    """Relay batches of ``limit`` until one is not full; return how many events went out."""
    total = 0
    while True:
        count = relay(app, outbox, limit=limit)
        total += count
        if count < limit:
            return total


class OutboxRelay:
    """A background thread that relays the outbox every ``interval`` seconds (and at once
    after a full batch), for sites without Celery."""

    def __init__(
        self, app: Thorn, outbox: Outbox | None = None, *, interval: float = 1.0, limit: int = 100
    ) -> None:
        self.app = app
        self.outbox = outbox
        self.interval = interval
        self.limit = limit
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OutboxRelay:
        """Start relaying in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="thorn-outbox-relay", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # Batch by batch rather than drain(), to stop between batches.
                while relay(self.app, self.outbox, limit=self.limit) == self.limit:
                    if self._stop.is_set():
                        return
            except Exception:
                logger.exception("Relaying the Thorn outbox failed; trying again")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Stop after the batch in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
