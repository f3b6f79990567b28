"""The subscription REST API: a user's own subscriptions, checked by the core."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from thorn_core.subscriptions import check_subscription
from thorn_django import get_app
from thorn_django.models import Subscriber

pytestmark = pytest.mark.django_db

LIST = "/hooks/"


def detail(row: Any) -> str:
    """The API URL of one subscription."""
    return reverse("thorn:subscriber-detail", kwargs={"uuid": row.uuid})


@pytest.fixture
def alice(make_user: Callable[[str], Any]) -> Any:
    """A user."""
    return make_user("alice")


@pytest.fixture
def client(alice: Any) -> APIClient:
    """An API client logged in as alice."""
    api = APIClient()
    api.force_authenticate(alice)
    return api


class TestOwnSubscriptions:
    def test_create_shows_the_secret_once(self, client: APIClient, alice: Any) -> None:
        """Creating answers 201 with the generated secret; reading it later never shows it."""
        answer = client.post(
            LIST, {"event": "article.*", "url": "https://example.com/hook"}, format="json"
        )
        assert answer.status_code == 201, answer.data
        body = answer.json()
        row = Subscriber.objects.get(uuid=body["uuid"])
        assert body["hmac_secret"] == row.hmac_secret
        assert row.user == alice
        assert "hmac_secret" not in client.get(detail(row)).json()
        assert "hmac_secret" not in client.get(LIST).json()[0]

    def test_list_update_delete(
        self, client: APIClient, subscribe: Callable[..., Any], alice: Any
    ) -> None:
        """A user lists, changes and deletes their subscriptions."""
        row = subscribe("article.created", "https://example.com/a", user=alice)
        assert [item["uuid"] for item in client.get(LIST).json()] == [str(row.uuid)]
        answer = client.patch(detail(row), {"active": False, "event": "article.*"}, format="json")
        assert answer.status_code == 200
        row.refresh_from_db()
        assert (row.active, row.event) == (False, "article.*")
        assert client.delete(detail(row)).status_code == 204
        assert not Subscriber.objects.exists()


class TestOtherUsers:
    def test_never_seen_nor_touched(
        self,
        client: APIClient,
        subscribe: Callable[..., Any],
        make_user: Callable[[str], Any],
    ) -> None:
        """Bob's subscription is absent from alice's list and answers 404 to every method."""
        bob = make_user("bob")
        row = subscribe("article.created", "https://example.com/bob", user=bob)
        unowned = subscribe("article.created", "https://example.com/site")
        assert client.get(LIST).json() == []
        for target in (row, unowned):
            assert client.get(detail(target)).status_code == 404
            assert client.patch(detail(target), {"active": False}, format="json").status_code == 404
            assert (
                client.put(
                    detail(target), {"event": "*", "url": "https://example.com/x"}, format="json"
                ).status_code
                == 404
            )
            assert client.delete(detail(target)).status_code == 404
        row.refresh_from_db()
        assert row.active
        assert row.user == bob
        assert Subscriber.objects.count() == 2

    def test_anonymous_is_refused(self) -> None:
        """Without authentication the API answers 403 (the default permission)."""
        assert APIClient().get(LIST).status_code == 403
        answer = APIClient().post(LIST, {"event": "*", "url": "https://example.com/"})
        assert answer.status_code == 403


class TestValidation:
    @pytest.mark.parametrize(
        "submitted",
        [
            {"event": "article.*.x", "url": "https://example.com/hook"},
            {"event": "article.created", "url": "http://169.254.169.254/latest/meta-data"},
            {"event": "article.created", "url": "http://127.0.0.1:8000/hook"},
            {"event": "article.created", "url": "https://example.com/", "content_type": "text/csv"},
            {"event": "article.created", "url": "https://example.com/", "hmac_digest": "md5"},
        ],
    )
    def test_messages_per_field_as_the_core_says(
        self, client: APIClient, submitted: dict[str, str]
    ) -> None:
        """Bad patterns, hostile URLs, unknown types and digests: 400 with the core's messages."""
        answer = client.post(LIST, submitted, format="json")
        assert answer.status_code == 400
        assert answer.json() == check_subscription(get_app(), submitted)
        assert not Subscriber.objects.exists()

    def test_event_choices(self, client: APIClient, settings: Any) -> None:
        """``THORN_EVENT_CHOICES`` limits what can be subscribed to."""
        settings.THORN_EVENT_CHOICES = ["article.created"]
        answer = client.post(
            LIST, {"event": "user.*", "url": "https://example.com/"}, format="json"
        )
        assert answer.status_code == 400
        assert "not one of the events" in answer.json()["event"][0]

    def test_bad_update_is_refused(
        self, client: APIClient, subscribe: Callable[..., Any], alice: Any
    ) -> None:
        """An update is checked like a creation."""
        row = subscribe("article.created", "https://example.com/a", user=alice)
        answer = client.patch(detail(row), {"url": "http://10.1.2.3/"}, format="json")
        assert answer.status_code == 400
        assert list(answer.json()) == ["url"]


class TestPermissions:
    def test_permission_classes_setting(self, client: APIClient, settings: Any) -> None:
        """``THORN_DRF_PERMISSION_CLASSES`` replaces the default permission."""
        settings.THORN_DRF_PERMISSION_CLASSES = ["rest_framework.permissions.IsAdminUser"]
        assert client.get(LIST).status_code == 403
