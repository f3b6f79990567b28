"""Thorn's pytest plugin: ``thorn_app``, ``webhook_receiver`` and ``captured_events`` fixtures.

Installed with Thorn (the ``pytest11`` entry point) and opt-in by fixture use: a test that
asks for none of these fixtures runs exactly as without the plugin. Importing this module
imports only pytest; Thorn is imported when a fixture is first used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .app import Thorn
    from .dispatchers.capture import CapturedEvents
    from .testing import WebhookRecorder

__all__ = ["captured_events", "thorn_app", "thorn_settings", "webhook_receiver"]


@pytest.fixture
def thorn_settings() -> Mapping[str, Any]:
    """The ``THORN_*`` settings of ``thorn_app``; override this fixture to set your own.

    Without ``THORN_RECIPIENT_VALIDATORS``, ``thorn_app`` allows loopback so that it can
    reach ``webhook_receiver``.
    """
    return {}


@pytest.fixture
def thorn_app(thorn_settings: Mapping[str, Any]) -> Iterator[Thorn]:
    """An isolated Thorn app, current for the test; the previous current app comes back after.

    It is closed at the end of the test.
    """
    from . import app as app_module
    from .app import Thorn
    from .testing import loopback_validators

    settings = {"THORN_RECIPIENT_VALIDATORS": loopback_validators(), **thorn_settings}
    saved = app_module._current
    app = Thorn(settings, set_as_current=True)
    try:
        yield app
    finally:
        app.close()
        with app_module._current_lock:
            app_module._current = saved


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookRecorder]:
    """A real receiver on 127.0.0.1 that verifies and records the webhooks it gets.

    Subscribe it with ``webhook_receiver.subscribe(thorn_app, "user.*")`` or use
    ``webhook_receiver.subscriber(...)``; assert with ``assert_received(...)``.
    """
    from .testing import WebhookRecorder

    with WebhookRecorder() as recorder:
        yield recorder


@pytest.fixture
def captured_events(thorn_app: Thorn) -> Iterator[CapturedEvents]:
    """Switch ``thorn_app`` to the ``capture`` dispatcher for the test and return its record.

    Events are recorded, not sent. The app's own settings come back at the end of the test,
    so overriding ``thorn_app`` to return your application's app works too.
    """
    import attrs

    from .dispatchers.capture import CaptureDispatcher

    original = thorn_app.settings
    thorn_app.configure(attrs.evolve(original, dispatcher=CaptureDispatcher))
    dispatcher = thorn_app.dispatcher
    assert isinstance(dispatcher, CaptureDispatcher)
    try:
        yield dispatcher.captured
    finally:
        thorn_app.configure(original)
