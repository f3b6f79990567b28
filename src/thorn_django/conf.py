"""The Thorn app of a Django project: built from ``settings.THORN_*``, rebuilt on change."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured as DjangoImproperlyConfigured

from thorn_core import Thorn
from thorn_core.exceptions import ThornError
from thorn_core.settings import PREFIX

if TYPE_CHECKING:
    from django.db.models import Model

    from thorn_core.results import SendResult

__all__ = [
    "DEFAULT_DELIVERY_LOG",
    "DEFAULT_SUBSCRIBER_MODEL",
    "get_app",
    "get_subscriber_model",
    "thorn_settings",
]

#: The model stored subscribers live in unless ``THORN_SUBSCRIBER_MODEL`` names another.
DEFAULT_SUBSCRIBER_MODEL = "thorn_django.Subscriber"
#: The delivery log of a project that does not set ``THORN_DELIVERY_LOG`` (None: in memory).
DEFAULT_DELIVERY_LOG = "thorn_django.log:DjangoDeliveryLog"

_lock = threading.Lock()

_T = TypeVar("_T")


class _State:
    """The one Thorn app of the project and the configuration error it was built with."""

    app: Thorn | None = None
    error: ThornError | None = None


_state = _State()


def thorn_settings() -> dict[str, Any]:
    """Every ``THORN_*`` setting of the project (``override_settings`` included)."""
    return {name: getattr(settings, name) for name in dir(settings) if name.startswith(PREFIX)}


def _app_settings() -> dict[str, Any]:
    """The settings the app is built from: the project's, with the database delivery log
    unless ``THORN_DELIVERY_LOG`` is set (``None`` keeps the in-memory one)."""
    values = thorn_settings()
    values.setdefault("THORN_DELIVERY_LOG", DEFAULT_DELIVERY_LOG)
    return values


class MisconfiguredDispatcher:
    """Stands in for the dispatcher while ``THORN_*`` settings are invalid: every send raises.

    Django still starts, so that ``manage.py check`` reports the problem as ``thorn.E0xx``,
    but no event is silently sent with other settings than the configured ones.
    """

    error: ThornError = ThornError("Thorn is not configured")

    def __init__(self, app: Thorn) -> None:
        self.app = app

    def prepare(self, result: SendResult) -> None:
        """Raise the configuration error at ``send()``."""
        raise self.error

    def dispatch(self, results: Sequence[SendResult]) -> None:
        """Raise the configuration error."""
        raise self.error

    def close(self) -> None:
        """Nothing to release."""


def _misconfigured(error: ThornError) -> dict[str, Any]:
    """Settings for an app that raises ``error`` on every send."""
    dispatcher = type("MisconfiguredDispatcher", (MisconfiguredDispatcher,), {"error": error})
    return {"THORN_DISPATCHER": dispatcher}


def _with_settings(apply: Callable[[dict[str, Any]], _T]) -> _T:
    """``apply`` the project's settings; when they are invalid, apply the settings of an app
    that raises the error on every send instead. Remembers the error (or its absence)."""
    try:
        result = apply(_app_settings())
        _state.error = None
    except ThornError as exc:
        result = apply(_misconfigured(exc))
        _state.error = exc
    return result


def setup() -> Thorn:
    """Build the project's app (``AppConfig.ready``): Django binding, stored subscribers,
    the database delivery log (unless ``THORN_DELIVERY_LOG`` says otherwise), the outbox.

    Idempotent. Invalid settings do not raise here: the app raises them on every send and the
    system checks report them.
    """
    from .binding import DjangoBinding
    from .outbox import DjangoOutbox
    from .source import StoredSubscribers

    with _lock:
        app = _state.app
        if app is None:
            # One binding: Thorn() fails on the settings before it uses the binding, and a
            # second one would leave its m2m_changed receiver connected for good.
            binding = DjangoBinding()
            app = _with_settings(
                lambda values: Thorn(values, binding=binding, set_as_current=False)
            )
            app.add_subscriber_source(StoredSubscribers())
            # Used only while THORN_OUTBOX is True (the core checks it at every send), so
            # override_settings can switch it, and the relay drains what is left when off.
            app.outbox = DjangoOutbox()
            _state.app = app
        app.debug = bool(settings.DEBUG)
        app.set_current()
        return app


def follow_debug() -> None:
    """Follow ``DEBUG`` (payloads breaking their schema raise in debug mode by default)."""
    app = _state.app
    if app is not None:
        app.debug = bool(settings.DEBUG)


def reconfigure() -> None:
    """Apply the current ``THORN_*`` settings to the app (on ``setting_changed``)."""
    app = _state.app
    if app is None:
        return
    _with_settings(app.configure)


def get_app() -> Thorn:
    """The project's Thorn app (the one ``thorn_django`` built from ``settings.THORN_*``).

    Raises:
        django.core.exceptions.ImproperlyConfigured: ``thorn_django`` is not installed.
    """
    app = _state.app
    if app is None:
        if not apps.is_installed("thorn_django"):
            raise DjangoImproperlyConfigured("Add 'thorn_django' to INSTALLED_APPS to use it")
        app = setup()
    return app


def configuration_error() -> ThornError | None:
    """The error the current ``THORN_*`` settings raise, if any."""
    return _state.error


def get_subscriber_model() -> type[Model]:
    """The stored-subscriber model: ``THORN_SUBSCRIBER_MODEL``, else ``thorn_django.Subscriber``.

    Resolved on every call, so ``override_settings`` applies at once.

    Raises:
        django.core.exceptions.ImproperlyConfigured: the setting names no installed model.
    """
    name = getattr(settings, "THORN_SUBSCRIBER_MODEL", None) or DEFAULT_SUBSCRIBER_MODEL
    try:
        return apps.get_model(name, require_ready=False)
    except ValueError:
        raise DjangoImproperlyConfigured(
            f"THORN_SUBSCRIBER_MODEL must be of the form 'app_label.ModelName', got {name!r}"
        ) from None
    except LookupError:
        raise DjangoImproperlyConfigured(
            f"THORN_SUBSCRIBER_MODEL refers to model {name!r}, which is not installed"
        ) from None
