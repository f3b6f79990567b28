"""Thorn: webhooks for Python — events, subscribers, HMAC signing and safe delivery."""

from __future__ import annotations

from ._version import __version__
from .app import Thorn, current_app
from .buffer import EventBuffer, buffer_events
from .delivery import Delivery
from .dispatchers import Dispatcher
from .events import Event
from .exceptions import (
    ImproperlyConfigured,
    InvalidEventName,
    InvalidFilter,
    InvalidModelEvent,
    InvalidPattern,
    InvalidPayloadFilter,
    InvalidSignature,
    InvalidSubscriber,
    InvalidURL,
    RecipientRefused,
    SerializationError,
    ThornError,
    UnknownDispatcher,
)
from .filters import Q
from .message import EventMessage
from .model_events import ModelEvent, webhook_model
from .results import SendResult
from .retry import RetryPolicy
from .reversers import model_reverser
from .settings import Settings
from .subscribers import Subscriber, SubscriberSource

__all__ = [
    "Delivery",
    "Dispatcher",
    "Event",
    "EventBuffer",
    "EventMessage",
    "ImproperlyConfigured",
    "InvalidEventName",
    "InvalidFilter",
    "InvalidModelEvent",
    "InvalidPattern",
    "InvalidPayloadFilter",
    "InvalidSignature",
    "InvalidSubscriber",
    "InvalidURL",
    "ModelEvent",
    "Q",
    "RecipientRefused",
    "RetryPolicy",
    "SendResult",
    "SerializationError",
    "Settings",
    "Subscriber",
    "SubscriberSource",
    "Thorn",
    "ThornError",
    "UnknownDispatcher",
    "__version__",
    "buffer_events",
    "current_app",
    "model_reverser",
    "webhook_model",
]
