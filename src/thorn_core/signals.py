"""Blinker signals of the delivery lifecycle, for metrics and audit; the sender is the Thorn app."""

from __future__ import annotations

from blinker import Namespace

__all__ = [
    "circuit_closed",
    "circuit_opened",
    "delivery_failed",
    "delivery_retrying",
    "delivery_succeeded",
    "event_sent",
    "subscriber_deactivated",
]

_signals = Namespace()

#: An event was handed to the dispatcher: kwargs ``result`` (a :class:`~thorn_core.SendResult`).
event_sent = _signals.signal("thorn.event-sent")
#: A delivery got a 2xx answer: kwargs ``delivery``.
delivery_succeeded = _signals.signal("thorn.delivery-succeeded")
#: A delivery failed (refused, timed out, connection error, non-2xx): kwargs ``delivery``.
#: ``delivery.retryable`` says whether a later attempt could succeed.
delivery_failed = _signals.signal("thorn.delivery-failed")
#: A dispatcher scheduled a failed delivery for another attempt: kwargs ``delivery``, ``delay``.
delivery_retrying = _signals.signal("thorn.delivery-retrying")
#: A subscription was deactivated (the receiver answered 410 Gone): kwargs ``subscriber``,
#: ``reason`` and ``delivery``.
subscriber_deactivated = _signals.signal("thorn.subscriber-deactivated")
#: An endpoint's circuit opened (its deliveries are deferred): kwargs ``key`` (the endpoint)
#: and ``status`` (an :class:`~thorn_core.health.EndpointStatus`). Sent once per transition,
#: by the process whose attempt caused it.
circuit_opened = _signals.signal("thorn.circuit-opened")
#: An endpoint's circuit closed again (a probe succeeded): kwargs ``key`` and ``status``.
circuit_closed = _signals.signal("thorn.circuit-closed")
