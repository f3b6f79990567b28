"""System checks for ``THORN_*`` settings: ``manage.py check`` reports ``thorn.E001``..."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured as DjangoImproperlyConfigured
from django.utils.module_loading import import_string

from thorn_core.codecs import build_codecs
from thorn_core.dispatchers import resolve
from thorn_core.exceptions import ThornError, UnknownDispatcher
from thorn_core.settings import Settings
from thorn_core.signing import load_signer
from thorn_core.subscribers import StaticSubscribers
from thorn_core.validators import load_validators

__all__ = ["CHECKS", "check_settings", "register"]

#: Every check id with what it reports (the table in docs/django.md).
CHECKS = {
    "thorn.E001": "THORN_DISPATCHER names no known dispatcher",
    "thorn.E002": "THORN_DISPATCHER is 'celery' but Celery is not installed",
    "thorn.E003": "THORN_SUBSCRIBERS is malformed",
    "thorn.E004": "THORN_HMAC_SIGNER cannot be imported or is not callable",
    "thorn.E005": "THORN_RECIPIENT_VALIDATORS holds a validator that cannot be built",
    "thorn.E006": "a THORN_ setting is unknown or has a value of the wrong type",
    "thorn.E007": "the dispatcher failed to load or refused its configuration",
    "thorn.E008": "THORN_CODECS holds a codec that cannot be loaded",
    "thorn.E009": "THORN_SUBSCRIBER_MODEL names no installed model",
    "thorn.E010": "THORN_DRF_PERMISSION_CLASSES holds a class that cannot be imported",
}

_HINTS = {
    "thorn.E001": "Use 'default', 'disabled', 'celery', an installed plugin's name, or "
    "'module:Class'.",
    "thorn.E002": "pip install 'thorn-webhooks[celery]', or choose another THORN_DISPATCHER.",
    "thorn.E003": "Map event patterns to a URL, a dict, a list of them, or a callable.",
    "thorn.E004": "Give 'module:function' (or a callable) taking (digest, secret, body).",
    "thorn.E005": "Use validator objects from thorn_core.validators or [name, [args]] specs.",
    "thorn.E006": "See docs/settings.md for every THORN_ setting and its type.",
    "thorn.E009": "Give 'app_label.ModelName' of a model subclassing AbstractSubscriber.",
}


def _error(check_id: str, exc: BaseException | str) -> checks.Error:
    return checks.Error(str(exc), hint=_HINTS.get(check_id), obj="settings", id=check_id)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check every ``THORN_*`` setting the way building the Thorn app would."""
    from .conf import get_subscriber_model, thorn_settings

    try:
        settings = Settings.from_mapping(thorn_settings())
    except ThornError as exc:
        return [_error("thorn.E006", exc)]
    errors: list[checks.CheckMessage] = []

    def attempt(check_id: str, step: Callable[[], object]) -> None:
        try:
            step()
        except (ThornError, ImportError) as exc:
            errors.append(_error(check_id, exc))

    if settings.dispatcher == "celery" and importlib.util.find_spec("celery") is None:
        errors.append(
            _error("thorn.E002", "THORN_DISPATCHER='celery' needs Celery, which is not installed")
        )
    else:
        errors.extend(_check_dispatcher(settings))
    attempt("thorn.E003", lambda: StaticSubscribers.from_setting(settings.subscribers))
    attempt("thorn.E004", lambda: load_signer(settings.hmac_signer))
    if settings.recipient_validators is not None:
        attempt("thorn.E005", lambda: load_validators(settings.recipient_validators))
    attempt("thorn.E008", lambda: build_codecs(settings.codecs))
    try:
        get_subscriber_model()
    except DjangoImproperlyConfigured as exc:
        errors.append(_error("thorn.E009", exc))
    for path in settings.drf_permission_classes or ():
        try:
            import_string(path)
        except ImportError as exc:
            errors.append(_error("thorn.E010", f"THORN_DRF_PERMISSION_CLASSES: {path!r}: {exc}"))
    return errors


def _check_dispatcher(settings: Settings) -> list[checks.CheckMessage]:
    """E001 for an unknown dispatcher, E007 for one that fails to load or to accept settings."""
    try:
        factory = resolve(settings.dispatcher)
        check = getattr(factory, "check", None)
        if callable(check):
            check(settings)
    except UnknownDispatcher as exc:
        return [_error("thorn.E001", exc)]
    except (ThornError, ImportError) as exc:
        return [_error("thorn.E007", exc)]
    return []


def register() -> None:
    """Register the checks (from ``AppConfig.ready``; registering twice is harmless)."""
    checks.register(check_settings, "thorn")
