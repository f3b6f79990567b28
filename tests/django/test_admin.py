"""The subscriber admin: lists without secrets, search, filters, and the test ping action."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from thorn_core.receiver import WebhookReceiver

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/thorn_django/subscriber/"


@pytest.fixture
def admin_client_(db: None) -> Client:
    """A client logged in as a superuser."""
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


class TestChangelist:
    def test_secret_not_listed(self, admin_client_: Client, subscribe: Callable[..., Any]) -> None:
        """The list shows event and URL, never the secret."""
        row = subscribe("article.created", "https://example.com/listed")
        page = admin_client_.get(CHANGELIST).content.decode()
        assert "https://example.com/listed" in page
        assert row.hmac_secret not in page

    def test_search_and_filter(self, admin_client_: Client, subscribe: Callable[..., Any]) -> None:
        """Search by URL and filter by active state narrow the list."""
        subscribe("article.created", "https://example.com/one")
        subscribe("user.created", "https://example.com/two", active=False)
        page = admin_client_.get(CHANGELIST, {"q": "two"}).content.decode()
        assert "example.com/two" in page
        assert "example.com/one" not in page
        page = admin_client_.get(CHANGELIST, {"active__exact": "1"}).content.decode()
        assert "example.com/one" in page
        assert "example.com/two" not in page

    def test_change_form_validates(
        self, admin_client_: Client, subscribe: Callable[..., Any]
    ) -> None:
        """The change form refuses a hostile URL with the core's message."""
        row = subscribe("article.created", "https://example.com/one")
        answer = admin_client_.post(
            f"{CHANGELIST}{row.pk}/change/",
            {
                "event": "article.created",
                "url": "http://10.0.0.1/",
                "active": "on",
                "content_type": "application/json",
                "hmac_digest": "sha256",
            },
        )
        assert answer.status_code == 200
        assert "10.0.0.1" in answer.content.decode()
        row.refresh_from_db()
        assert row.url == "https://example.com/one"


class TestPingAction:
    @pytest.mark.usefixtures("loopback")
    def test_ping_reaches_the_receiver(
        self, admin_client_: Client, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """The action delivers a signed ``thorn.ping`` to each selected subscriber."""
        row = subscribe("article.created", receiver.url("/ping"))
        answer = admin_client_.post(
            CHANGELIST,
            {"action": "send_test_ping", "_selected_action": [row.pk]},
            follow=True,
        )
        assert "delivered (HTTP 200)" in answer.content.decode()
        (webhook,) = receiver.received
        assert webhook.event == "thorn.ping"
        assert webhook.standard_webhook_valid(row.hmac_secret)

    def test_refused_ping_is_reported(
        self, admin_client_: Client, subscribe: Callable[..., Any]
    ) -> None:
        """A ping the validators refuse is reported as failed."""
        row = subscribe("article.created", "http://127.0.0.1:9/blocked")
        answer = admin_client_.post(
            CHANGELIST, {"action": "send_test_ping", "_selected_action": [row.pk]}, follow=True
        )
        assert "failed" in answer.content.decode()


class TestActionPermissions:
    """Actions that send or re-enable need the change permission; viewing is not enough."""

    @pytest.mark.usefixtures("loopback")
    def test_view_only_staff_cannot_ping_or_redeliver(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """A staff user with only the view permissions sees no actions and sends nothing."""
        from django.contrib.auth.models import Permission

        user = get_user_model().objects.create_user("viewer", "v@example.com", "pw")
        user.is_staff = True
        user.save()
        user.user_permissions.add(
            *Permission.objects.filter(codename__in=["view_subscriber", "view_deliveryattempt"])
        )
        client = Client()
        client.force_login(user)
        row = subscribe("article.created", receiver.url("/ping"))

        page = client.get(CHANGELIST).content.decode()
        assert "send_test_ping" not in page
        assert "reenable" not in page
        client.post(CHANGELIST, {"action": "send_test_ping", "_selected_action": [row.pk]})
        attempts = client.get("/admin/thorn_django/deliveryattempt/").content.decode()
        assert "redeliver_selected" not in attempts
        assert receiver.received == []
