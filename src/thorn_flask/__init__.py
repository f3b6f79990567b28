"""Thorn for Flask: the extension, SQLAlchemy subscribers, model events, delivery log and
outbox, API and CLI."""

from __future__ import annotations

from .api import create_blueprint
from .binding import SQLAlchemyBinding, binding, webhook_model
from .extension import Thorn, ThornState, get_state
from .log import SQLAlchemyDeliveryLog
from .models import (
    Base,
    DeliveryAttempt,
    DeliveryAttemptMixin,
    OutboxEvent,
    OutboxEventMixin,
    Subscriber,
    SubscriberMixin,
)
from .outbox import SQLAlchemyOutbox
from .store import StoredSubscribers
from .verify import verify_webhook

__all__ = [
    "Base",
    "DeliveryAttempt",
    "DeliveryAttemptMixin",
    "OutboxEvent",
    "OutboxEventMixin",
    "SQLAlchemyBinding",
    "SQLAlchemyDeliveryLog",
    "SQLAlchemyOutbox",
    "StoredSubscribers",
    "Subscriber",
    "SubscriberMixin",
    "Thorn",
    "ThornState",
    "binding",
    "create_blueprint",
    "get_state",
    "verify_webhook",
    "webhook_model",
]
