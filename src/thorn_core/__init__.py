"""Thorn: webhooks for Python — events, subscribers, HMAC signing and safe delivery."""

from __future__ import annotations

from ._version import __version__
from .app import Thorn, current_app
from .buffer import EventBuffer, buffer_events
from .catalog import Catalog, EventType
from .delivery import Delivery
from .dispatchers import Dispatcher
from .events import Event
from .exceptions import (
    ImproperlyConfigured,
    InvalidEventName,
    InvalidEventType,
    InvalidFilter,
    InvalidModelEvent,
    InvalidPattern,
    InvalidPayloadFilter,
    InvalidRotation,
    InvalidSecretKey,
    InvalidSignature,
    InvalidSubscriber,
    InvalidURL,
    PayloadValidationError,
    RecipientRefused,
    SecretDecryptionError,
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
from .rotation import rotate_secret
from .secretset import SecretSet, SubscriberSecret
from .settings import Settings
from .subscribers import Subscriber, SubscriberSource

__all__ = [
    "Catalog",
    "Delivery",
    "Dispatcher",
    "Event",
    "EventBuffer",
    "EventMessage",
    "EventType",
    "ImproperlyConfigured",
    "InvalidEventName",
    "InvalidEventType",
    "InvalidFilter",
    "InvalidModelEvent",
    "InvalidPattern",
    "InvalidPayloadFilter",
    "InvalidRotation",
    "InvalidSecretKey",
    "InvalidSignature",
    "InvalidSubscriber",
    "InvalidURL",
    "ModelEvent",
    "PayloadValidationError",
    "Q",
    "RecipientRefused",
    "RetryPolicy",
    "SecretDecryptionError",
    "SecretSet",
    "SendResult",
    "SerializationError",
    "Settings",
    "Subscriber",
    "SubscriberSecret",
    "SubscriberSource",
    "Thorn",
    "ThornError",
    "UnknownDispatcher",
    "__version__",
    "buffer_events",
    "current_app",
    "model_reverser",
    "rotate_secret",
    "webhook_model",
]
