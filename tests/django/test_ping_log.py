"""Pings in the Django project's delivery log: every test delivery is an attempt on record."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from thorn_core.ping import PING_EVENT
from thorn_core.receiver import WebhookReceiver
from thorn_django.models import DeliveryAttempt

pytestmark = pytest.mark.django_db


class TestPingsAreLogged:
    """``thorn_ping`` (and the admin's ping, through the same core call) logs its attempt."""

    @pytest.mark.usefixtures("loopback")
    def test_successful_ping(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """A delivered ping is one successful attempt of event thorn.ping, with its id."""
        row = subscribe("article.created", receiver.url("/ping"))
        call_command("thorn_ping", str(row.uuid), stdout=StringIO())
        (webhook,) = receiver.received
        (attempt,) = DeliveryAttempt.objects.all()
        assert attempt.event == PING_EVENT
        assert attempt.ok
        assert attempt.status_code == 200
        assert attempt.delivery_id == webhook.delivery_id
        assert str(attempt.subscriber_uuid) == str(row.uuid)

    def test_failed_ping(self, subscribe: Callable[..., Any]) -> None:
        """A refused ping is logged with the reason, as a failure of that subscriber."""
        row = subscribe("article.created", "http://127.0.0.1:9/hook")
        with pytest.raises(CommandError, match="failed"):
            call_command("thorn_ping", str(row.uuid), stdout=StringIO())
        (attempt,) = DeliveryAttempt.objects.all()
        assert attempt.event == PING_EVENT
        assert not attempt.ok
        assert "127.0.0.1" in attempt.error
