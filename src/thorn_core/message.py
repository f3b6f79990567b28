"""The event message a dispatcher receives: everything needed to deliver one sent event."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from .subscribers import Subscriber

__all__ = ["EventMessage"]


@attrs.frozen(kw_only=True)
class EventMessage:
    """One ``send()``: the event name, payload and the options that shape its deliveries.

    ``sender`` holds the sender's identifier (see :func:`~thorn_core.subscribers.sender_key`),
    so the message stays plain data that a queue can carry.
    """

    event: str
    data: Any
    sender: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float
    context: Mapping[str, Any] = attrs.field(factory=dict)
    retry: bool
    retry_max: int
    retry_delay: float
    #: Recipient validators for this event; None means the app's.
    recipient_validators: tuple[Any, ...] | None = None
    #: Subscribers given to the event or to this send, in addition to the app's sources.
    subscribers: tuple[Subscriber, ...] = ()
    id: str = attrs.field(factory=lambda: str(uuid.uuid4()))
