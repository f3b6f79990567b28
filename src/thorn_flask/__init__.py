"""Thorn for Flask: the extension, SQLAlchemy subscribers and model events, API and CLI."""

from __future__ import annotations

from .api import create_blueprint
from .binding import SQLAlchemyBinding, binding, webhook_model
from .extension import Thorn, ThornState, get_state
from .models import Base, Subscriber, SubscriberMixin
from .store import StoredSubscribers
from .verify import verify_webhook

__all__ = [
    "Base",
    "SQLAlchemyBinding",
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
