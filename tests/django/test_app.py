"""The Thorn app of the project: built in ready(), following override_settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps

from thorn_core import Event, ImproperlyConfigured, current_app
from thorn_django import DjangoBinding, get_app
from thorn_django.source import StoredSubscribers


class TestReady:
    def test_current_app_from_settings(self) -> None:
        """ready() made the project's app current, with the Django binding and stored rows."""
        app = get_app()
        assert current_app() is app
        assert isinstance(app.binding, DjangoBinding)
        assert app.settings.signal_honors_transaction is True
        assert StoredSubscribers() in app._sources

    def test_ready_is_idempotent(self) -> None:
        """Calling ready() again builds nothing new and connects nothing twice."""
        app = get_app()
        apps.get_app_config("thorn_django").ready()
        assert get_app() is app
        assert app._sources.count(StoredSubscribers()) == 1


class TestSettingChanged:
    def test_override_reconfigures(self, settings: Any) -> None:
        """Changing a THORN_ setting reconfigures the same app; the source and binding stay."""
        app = get_app()
        binding = app.binding
        settings.THORN_EVENT_TIMEOUT = 7.5
        assert get_app() is app
        assert app.settings.event_timeout == 7.5
        assert app.binding is binding
        assert StoredSubscribers() in app._sources

    def test_restored_after_override(self) -> None:
        """Leaving an override restores the settings."""
        from django.test import override_settings

        with override_settings(THORN_RETRY_MAX=1):
            assert get_app().settings.retry_max == 1
        assert get_app().settings.retry_max == 10

    def test_invalid_settings_raise_at_send(self, settings: Any) -> None:
        """With invalid THORN_ settings Django runs, but every send raises the problem."""
        settings.THORN_DISPATCHER = "no-such-dispatcher"
        with pytest.raises(ImproperlyConfigured, match="no-such-dispatcher"):
            Event("user.created").send({"id": 1})
        settings.THORN_DISPATCHER = "default"
        assert get_app().settings.dispatcher == "default"
