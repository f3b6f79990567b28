"""The ``thorn_django`` app config: ``ready()`` wires Thorn into Django and does nothing else."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.core.signals import setting_changed

from thorn_core.model_events import ModelWebhooks
from thorn_core.settings import PREFIX

__all__ = ["ThornConfig"]


class ThornConfig(AppConfig):
    """Builds the Thorn app from ``settings.THORN_*`` and follows ``override_settings``."""

    name = "thorn_django"
    verbose_name = "Thorn webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Build the app, connect ``setting_changed``, bind decorated models, register checks.

        No database access and no network; calling it twice changes nothing.
        """
        from thorn_core.catalog import add_schema_deriver

        from . import checks, conf
        from .catalog import schema_of

        add_schema_deriver(schema_of)  # before the app reads THORN_EVENT_TYPES
        app = conf.setup()
        setting_changed.connect(
            _setting_changed, weak=False, dispatch_uid="thorn_django.setting_changed"
        )
        bind_models(app.binding)
        checks.register()


def _setting_changed(setting: str, **kwargs: Any) -> None:
    from . import conf

    if setting.startswith(PREFIX):
        conf.reconfigure()
    elif setting == "DEBUG":
        conf.follow_debug()


def bind_models(binding: Any) -> None:
    """Connect the events of every ``@webhook_model`` model through ``binding``.

    Models are imported before ``ready()``, so their events connected through the binding of
    the app that was current then (the core's generic one); they move to the Django binding.
    An explicit ``@webhook_model(binding=...)`` other than the generic one is kept.
    """
    from thorn_core.binding import BlinkerBinding

    for model in apps.get_models(include_auto_created=False):
        webhooks = model.__dict__.get("webhooks")
        if not isinstance(webhooks, ModelWebhooks):
            continue
        for event in webhooks.events.values():
            current = event.binding_for(model)
            if current is not binding and (
                isinstance(current, BlinkerBinding) or model not in event.models
            ):
                event.connect_model(model, binding)
