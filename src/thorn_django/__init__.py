"""Thorn for Django: the app, Subscriber model, model events, REST API, admin and checks.

Add ``"thorn_django"`` to ``INSTALLED_APPS``; the public helpers are importable from here
without importing any model.
"""

from __future__ import annotations

from .binding import DjangoBinding
from .conf import get_app, get_subscriber_model, thorn_settings
from .decorators import verify_webhook

__all__ = [
    "DjangoBinding",
    "get_app",
    "get_subscriber_model",
    "thorn_settings",
    "verify_webhook",
]
