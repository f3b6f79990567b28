"""What ``Event.send`` returns: the event's deliveries, filled in as the dispatcher works."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from . import signals
from .delivery import Delivery
from .exceptions import DeliveryFailed
from .message import EventMessage
from .telemetry import get_logger, log_context, reset_log_context

if TYPE_CHECKING:
    from .app import Thorn

__all__ = ["Callbacks", "SendResult"]

logger = get_logger(__name__)

State = Literal["pending", "buffered", "delivered", "queued", "disabled", "stored"]


@attrs.frozen
class Callbacks:
    """Per-send callbacks. A timeout goes to ``on_timeout`` when given, else to ``on_error``."""

    on_success: Callable[[Delivery], Any] | None = None
    on_error: Callable[[Delivery, BaseException], Any] | None = None
    on_timeout: Callable[[Delivery, BaseException], Any] | None = None


@attrs.define(eq=False)
class SendResult:
    """One sent event and its deliveries.

    ``state`` is ``delivered`` once an in-process dispatcher has attempted every delivery,
    ``buffered`` inside :func:`~thorn_core.buffer_events` until the buffer flushes, ``queued``
    when a queueing dispatcher took it, ``disabled`` when nothing is sent.
    """

    message: EventMessage
    deliveries: list[Delivery] = attrs.field(factory=list)
    state: State = "pending"
    callbacks: Callbacks = attrs.field(factory=Callbacks, repr=False)
    #: What the dispatcher's ``prepare`` computed at ``send()`` time, for its ``dispatch``.
    prepared: Any = attrs.field(default=None, repr=False)

    @property
    def event(self) -> str:
        """The event name."""
        return self.message.event

    @property
    def ok(self) -> bool:
        """True when every delivery succeeded (and trivially when there were none)."""
        return all(d.ok for d in self.deliveries)

    @property
    def failed(self) -> list[Delivery]:
        """The deliveries that did not succeed."""
        return [d for d in self.deliveries if not d.ok]

    def record(self, app: Thorn, delivery: Delivery, *, next_retry_in: float | None = None) -> None:
        """Add ``delivery``, log the attempt, then run its callback and send its signal.

        ``next_retry_in`` is the delay a dispatcher scheduled another attempt after. A
        callback or receiver that raises is logged and does not stop the other deliveries.
        Its log records carry the delivery's fields (:data:`~thorn_core.telemetry.LOG_FIELDS`).
        """
        token = log_context(delivery)
        try:
            self._record(app, delivery, next_retry_in)
        finally:
            reset_log_context(token)

    def _record(self, app: Thorn, delivery: Delivery, next_retry_in: float | None) -> None:
        self.deliveries.append(delivery)
        app.after_delivery(delivery, next_retry_in=next_retry_in)
        if delivery.gone:
            try:
                app.deactivate_subscriber(
                    delivery.subscriber, "the receiver answered 410 Gone", delivery=delivery
                )
            except Exception:
                logger.exception("Deactivating subscriber %s failed", delivery.subscriber.uuid)
        callbacks = self.callbacks
        try:
            if delivery.ok:
                signal = signals.delivery_succeeded
                if callbacks.on_success is not None:
                    callbacks.on_success(delivery)
            else:
                signal = signals.delivery_failed
                exc = delivery.exception or DeliveryFailed(delivery.error or "delivery failed")
                handler = callbacks.on_error
                if delivery.timed_out and callbacks.on_timeout is not None:
                    handler = callbacks.on_timeout
                if handler is not None:
                    handler(delivery, exc)
        except Exception:
            logger.exception("A Thorn callback failed for delivery %s", delivery.id)
        if signal.receivers:
            try:
                signal.send(app, delivery=delivery)
            except Exception:
                logger.exception(
                    "A receiver of %s failed for delivery %s", signal.name, delivery.id
                )
