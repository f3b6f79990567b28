"""System checks for ``THORN_*`` settings: ``manage.py check`` reports ``thorn.E001``..."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured as DjangoImproperlyConfigured
from django.urls import get_resolver
from django.utils.module_loading import import_string

from thorn_core.app import _load_log
from thorn_core.catalog import Catalog
from thorn_core.codecs import build_codecs
from thorn_core.dispatchers import resolve
from thorn_core.exceptions import ThornError, UnknownDispatcher
from thorn_core.model_events import ModelWebhooks
from thorn_core.reversers import model_reverser
from thorn_core.settings import Settings
from thorn_core.signing import load_signer
from thorn_core.subscribers import StaticSubscribers
from thorn_core.validators import load_validators

__all__ = ["CHECKS", "check_secret_keys", "check_settings", "register"]

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
    "thorn.E011": "THORN_DELIVERY_LOG cannot be imported or made into a delivery log",
    "thorn.E012": "django.contrib.sites is installed without SITE_ID (or THORN_BASE_URL) "
    "while model events need absolute ref URLs",
    "thorn.E013": "a model event's model_reverser names a URL name that does not exist",
    "thorn.W001": "THORN_SECRET_KEYS is not set: subscriber secrets are stored in clear",
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
    "thorn.E011": "Give a DeliveryLog instance, a class made without arguments, or "
    "'module:name' of either.",
    "thorn.E012": "Set SITE_ID (the site whose domain refs use), or THORN_BASE_URL.",
    "thorn.E013": "Name a URL pattern of ROOT_URLCONF (with its namespace: 'app:name').",
    "thorn.E014": "Give each entry a 'name' and a JSON Schema (draft 2020-12), or a class one "
    "can be derived from ('app.serializers:OrderSerializer').",
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
    attempt("thorn.E014", lambda: Catalog().configure(settings.event_types or ()))
    if settings.delivery_log is not None:
        attempt("thorn.E011", lambda: _load_log(settings.delivery_log))
    errors.extend(_check_model_events(settings))
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


def _webhook_models() -> list[tuple[type, ModelWebhooks]]:
    """The installed models with ``@webhook_model`` events, and their webhooks."""
    found = []
    for model in apps.get_models():
        webhooks = model.__dict__.get("webhooks")
        if isinstance(webhooks, ModelWebhooks) and webhooks.events:
            found.append((model, webhooks))
    return found


def _check_model_events(settings: Settings) -> list[checks.CheckMessage]:
    """E012 when refs would need the current site and there is no SITE_ID; E013 for each
    ``model_reverser`` naming no URL pattern. Both would otherwise fail at save time."""
    errors: list[checks.CheckMessage] = []
    models = _webhook_models()
    needs_site = settings.base_url is None and apps.is_installed("django.contrib.sites")
    if needs_site and getattr(django_settings, "SITE_ID", None) is None:
        with_refs = sorted(
            model._meta.label  # type: ignore[attr-defined]
            for model, webhooks in models
            if callable(getattr(model, "get_absolute_url", None))
            or any(event.reverse is not None for event in webhooks.events.values())
        )
        if with_refs:
            errors.append(
                _error(
                    "thorn.E012",
                    "django.contrib.sites is installed but SITE_ID is not set: the ref URL of "
                    f"the model events of {', '.join(with_refs)} needs the current site, "
                    "which cannot be found outside a request",
                )
            )
    for model, webhooks in models:
        for attribute, event in webhooks.events.items():
            reverser = event.reverse
            if isinstance(reverser, model_reverser) and not _url_name_exists(reverser.view_name):
                errors.append(
                    _error(
                        "thorn.E013",
                        f"{model._meta.label}.webhooks.{attribute} ({event.name!r}) reverses "  # type: ignore[attr-defined]
                        f"{reverser.view_name!r}, which names no URL pattern",
                    )
                )
    return errors


def _url_name_exists(view_name: str) -> bool:
    """Whether ``reverse(view_name, ...)`` can find a pattern of that name (in its namespace),
    whatever the arguments; True when the URLconf cannot be loaded (Django reports that)."""
    try:
        resolver = get_resolver()
        *namespaces, name = view_name.split(":")
        for namespace in namespaces:
            instances = [namespace, *resolver.app_dict.get(namespace, ())]
            found = next((n for n in instances if n in resolver.namespace_dict), None)
            if found is None:
                return False
            resolver = resolver.namespace_dict[found][1]
        return name in resolver.reverse_dict
    except Exception:  # a broken URLconf is for urls.E00x to report
        return True


def check_secret_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W001 when stored secrets are not encrypted (no ``THORN_SECRET_KEYS``): a database dump
    would hand over every subscriber's signing secret. A malformed key is E006."""
    if getattr(django_settings, "THORN_SECRET_KEYS", None):
        return []
    return [
        checks.Warning(
            CHECKS["thorn.W001"],
            hint="Set THORN_SECRET_KEYS = [Fernet.generate_key().decode()] (kept out of the "
            "database), then run manage.py thorn_subscribers reencrypt; see docs/security.md.",
            obj="settings",
            id="thorn.W001",
        )
    ]


def register() -> None:
    """Register the checks (from ``AppConfig.ready``; registering twice is harmless)."""
    checks.register(check_settings, "thorn")
    checks.register(check_secret_keys, "thorn", checks.Tags.security)
