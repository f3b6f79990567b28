"""The pytest plugin's ``captured_events`` on the Django project's app: pings made while events
are captured are in the database delivery log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from thorn_core import Event, Thorn
from thorn_core.dispatchers.capture import CapturedEvents
from thorn_core.ping import PING_EVENT, ping
from thorn_core.receiver import WebhookReceiver
from thorn_django import get_app
from thorn_django.log import DjangoDeliveryLog
from thorn_django.models import DeliveryAttempt
from thorn_django.source import subscriber_from_model

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback")]


@pytest.fixture
def thorn_app() -> Thorn:
    """The project's app, as a Django project's conftest would give the plugin."""
    return get_app()


class TestCapturedEventsOnDjango:
    """The capture dispatcher replaces the dispatcher only; the log stays the database one."""

    def test_ping_while_capturing_is_in_the_database_log(
        self,
        captured_events: CapturedEvents,
        thorn_app: Thorn,
        subscribe: Callable[..., Any],
        receiver: WebhookReceiver,
    ) -> None:
        """Events are captured, not sent; a ping is delivered and stored as an attempt."""
        row = subscribe("order.*", receiver.url("/hook"))
        Event("order.paid").send({"id": 1})
        captured_events.assert_sent("order.paid", data={"id": 1})
        assert receiver.received == []
        assert isinstance(thorn_app.delivery_log, DjangoDeliveryLog)
        assert ping(thorn_app, subscriber_from_model(row)).ok
        (attempt,) = DeliveryAttempt.objects.all()
        assert (attempt.event, attempt.ok) == (PING_EVENT, True)
        assert [r.path for r in receiver.received] == ["/hook"]
