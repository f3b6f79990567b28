"""Redelivery and re-enabling through the REST API, ``thorn_redeliver`` and the admin."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from thorn_core.receiver import WebhookReceiver
from thorn_django import get_app
from thorn_django.models import DeliveryAttempt, FailureReset

from ._support import Switch

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback")]

CHANGELIST = "/admin/thorn_django/subscriber/"
ATTEMPTS = "/admin/thorn_django/deliveryattempt/"


def send(count: int, sender: Any) -> None:
    """Send ``count`` ``order.paid`` events of ``sender`` through the project's app."""
    for n in range(count):
        get_app().event("order.paid").send({"n": n}, sender=sender)


def run(*args: str) -> str:
    """Run a command and return what it printed."""
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def url(name: str, **kwargs: Any) -> str:
    """A URL of the subscription API."""
    return reverse(f"thorn:{name}", kwargs=kwargs)


@pytest.fixture
def alice(make_user: Callable[[str], Any]) -> Any:
    """A user."""
    return make_user("alice")


@pytest.fixture
def api(alice: Any) -> APIClient:
    """An API client logged in as alice."""
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def admin(db: None) -> Client:
    """A client logged in as a superuser."""
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def failed_twice(
    subscribe: Callable[..., Any], flaky: WebhookReceiver, switch: Switch, alice: Any
) -> Any:
    """Alice's subscription with two failed deliveries; the receiver has recovered since."""
    row = subscribe("order.*", flaky.url("/hook"), user=alice)
    send(2, alice)
    switch.down = False
    return row


def latest_attempt(delivery_id: str | None) -> int:
    """The attempt number of a delivery's latest logged attempt."""
    attempt = DeliveryAttempt.objects.filter(delivery_id=delivery_id).order_by("-at").first()
    assert attempt is not None
    return attempt.attempt


class TestApi:
    def test_redeliver_failed(
        self, api: APIClient, failed_twice: Any, flaky: WebhookReceiver
    ) -> None:
        """``POST <uuid>/redeliver/`` sends each failed delivery again, under its id."""
        answer = api.post(url("subscriber-redeliver", uuid=failed_twice.uuid), format="json")
        assert answer.status_code == 200, answer.content
        body = answer.json()
        assert (body["redelivered"], body["succeeded"], body["failed"]) == (2, 2, 0)
        first, second, again1, again2 = flaky.received
        assert [again1.delivery_id, again2.delivery_id] == [first.delivery_id, second.delivery_id]
        assert again1.body == first.body
        assert again1.hook_hmac_valid(failed_twice.hmac_secret)
        assert [item["attempt"] for item in body["deliveries"]] == [2, 2]
        nothing = api.post(url("subscriber-redeliver", uuid=failed_twice.uuid), format="json")
        assert nothing.json()["redelivered"] == 0
        assert len(flaky.received) == 4

    def test_redeliver_since(
        self, api: APIClient, failed_twice: Any, flaky: WebhookReceiver
    ) -> None:
        """``since`` limits the replay to deliveries attempted from then on; bad input is 400."""
        second = DeliveryAttempt.objects.order_by("at", "pk").last()
        assert second is not None
        since = second.at.isoformat()
        answer = api.post(
            url("subscriber-redeliver", uuid=failed_twice.uuid), {"since": since}, format="json"
        )
        assert answer.json()["redelivered"] == 1
        assert flaky.received[-1].delivery_id == second.delivery_id
        bad = api.post(
            url("subscriber-redeliver", uuid=failed_twice.uuid), {"since": "soon"}, format="json"
        )
        assert bad.status_code == 400
        assert "since" in bad.json()

    def test_redeliver_one(self, api: APIClient, failed_twice: Any, flaky: WebhookReceiver) -> None:
        """``POST deliveries/<id>/redeliver/`` sends one delivery again (next attempt)."""
        first = flaky.received[0]
        answer = api.post(url("delivery-redeliver", delivery_id=first.delivery_id))
        assert answer.status_code == 200
        assert answer.json()["ok"] is True
        assert answer.json()["attempt"] == 2
        assert flaky.received[-1].delivery_id == first.delivery_id
        assert latest_attempt(first.delivery_id) == 2
        assert api.post(url("delivery-redeliver", delivery_id="nope")).status_code == 404

    def test_deliveries_listed(self, api: APIClient, failed_twice: Any, alice: Any) -> None:
        """``GET <uuid>/deliveries/`` lists the attempts, newest first, ``?failed=1`` filters."""
        send(1, alice)
        listed = api.get(url("subscriber-deliveries", uuid=failed_twice.uuid)).json()
        assert [item["ok"] for item in listed] == [True, False, False]
        assert "body" not in listed[0]
        failed = api.get(url("subscriber-deliveries", uuid=failed_twice.uuid), {"failed": "1"})
        assert len(failed.json()) == 2
        limited = api.get(url("subscriber-deliveries", uuid=failed_twice.uuid), {"limit": "1"})
        assert len(limited.json()) == 1

    def test_enable(
        self, api: APIClient, failed_twice: Any, flaky: WebhookReceiver, settings: Any
    ) -> None:
        """A deactivated subscription: redelivery is 409; ``enable/`` switches it back on."""
        failed_twice.active = False
        failed_twice.save()
        refused = api.post(url("subscriber-redeliver", uuid=failed_twice.uuid))
        assert refused.status_code == 409
        assert "re-enable" in refused.json()["detail"] or "deactivated" in refused.json()["detail"]
        one = api.post(url("delivery-redeliver", delivery_id=flaky.received[0].delivery_id))
        assert one.status_code == 409
        answer = api.post(url("subscriber-enable", uuid=failed_twice.uuid))
        assert answer.status_code == 200
        assert answer.json()["active"] is True
        assert "hmac_secret" not in answer.json()
        assert FailureReset.objects.filter(subscriber_uuid=failed_twice.uuid).exists()
        assert api.post(url("subscriber-redeliver", uuid=failed_twice.uuid)).status_code == 200
        assert len(flaky.received) == 4

    def test_others_get_404(
        self,
        api: APIClient,
        subscribe: Callable[..., Any],
        make_user: Callable[[str], Any],
        flaky: WebhookReceiver,
    ) -> None:
        """Bob's subscription and deliveries answer 404 to alice, and nothing is sent."""
        bob = make_user("bob")
        row = subscribe("order.*", flaky.url("/bob"), user=bob)
        send(1, bob)
        (webhook,) = flaky.received
        row.active = False
        row.save()
        for name in ("subscriber-redeliver", "subscriber-enable"):
            assert api.post(url(name, uuid=row.uuid)).status_code == 404
        assert api.get(url("subscriber-deliveries", uuid=row.uuid)).status_code == 404
        one = api.post(url("delivery-redeliver", delivery_id=webhook.delivery_id))
        assert one.status_code == 404
        row.refresh_from_db()
        assert not row.active
        assert len(flaky.received) == 1

    def test_patch_active_re_enables(self, api: APIClient, failed_twice: Any) -> None:
        """Switching ``active`` back on with ``PATCH`` resets the failure count too."""
        failed_twice.active = False
        failed_twice.save()
        answer = api.patch(
            url("subscriber-detail", uuid=failed_twice.uuid), {"active": True}, format="json"
        )
        assert answer.status_code == 200
        assert FailureReset.objects.filter(subscriber_uuid=failed_twice.uuid).exists()


class TestCommand:
    def test_subscriber_with_progress(self, failed_twice: Any, flaky: WebhookReceiver) -> None:
        """``--subscriber`` replays every failed delivery and prints one line per delivery."""
        output = run("thorn_redeliver", "--subscriber", str(failed_twice.uuid))
        assert "[1/2]" in output
        assert "[2/2]" in output
        assert "Redelivered 2: 2 delivered, 0 failed" in output
        assert len(flaky.received) == 4

    def test_one_delivery(self, failed_twice: Any, flaky: WebhookReceiver) -> None:
        """``--delivery`` sends one delivery again."""
        first = flaky.received[0].delivery_id
        assert first is not None
        output = run("thorn_redeliver", "--delivery", first)
        assert f"Delivery {first}: delivered (HTTP 200)" in output
        assert flaky.received[-1].delivery_id == first
        assert latest_attempt(first) == 2

    def test_errors(self, failed_twice: Any, switch: Switch) -> None:
        """Unknown deliveries, bad times, deactivated subscribers and new failures fail."""
        with pytest.raises(CommandError, match="not in the delivery log"):
            run("thorn_redeliver", "--delivery", "nope")
        with pytest.raises(CommandError, match="--since"):
            run("thorn_redeliver", "--subscriber", str(failed_twice.uuid), "--since", "x")
        switch.down = True
        delivery_id = DeliveryAttempt.objects.values_list("delivery_id", flat=True).first()
        assert delivery_id is not None
        with pytest.raises(CommandError, match="failed again"):
            run("thorn_redeliver", "--delivery", delivery_id)
        failed_twice.active = False
        failed_twice.save()
        with pytest.raises(CommandError, match="deactivated"):
            run("thorn_redeliver", "--subscriber", str(failed_twice.uuid))


class TestAdmin:
    def test_redeliver_action(
        self, admin: Client, failed_twice: Any, flaky: WebhookReceiver
    ) -> None:
        """The subscriber action replays the failed deliveries and reports the outcome."""
        answer = admin.post(
            CHANGELIST,
            {"action": "redeliver_failed_deliveries", "_selected_action": [failed_twice.pk]},
            follow=True,
        )
        assert "2 redelivered, 2 delivered, 0 failed" in answer.content.decode()
        assert len(flaky.received) == 4

    def test_reenable_action(self, admin: Client, failed_twice: Any) -> None:
        """The re-enable action switches the subscriber on and resets its failure count."""
        failed_twice.active = False
        failed_twice.save()
        admin.post(
            CHANGELIST,
            {"action": "reenable", "_selected_action": [failed_twice.pk]},
            follow=True,
        )
        failed_twice.refresh_from_db()
        assert failed_twice.active
        assert FailureReset.objects.filter(subscriber_uuid=failed_twice.uuid).exists()

    def test_attempts_read_only(
        self, admin: Client, failed_twice: Any, flaky: WebhookReceiver
    ) -> None:
        """The log lists attempts with filters, never the secret, and cannot be edited."""
        page = admin.get(ATTEMPTS, {"ok__exact": "0"}).content.decode()
        assert "order.paid" in page
        assert failed_twice.hmac_secret not in page
        attempt = DeliveryAttempt.objects.first()
        assert attempt is not None
        detail = admin.get(f"{ATTEMPTS}{attempt.pk}/change/").content.decode()
        assert attempt.delivery_id in detail
        assert failed_twice.hmac_secret not in detail
        assert admin.get(f"{ATTEMPTS}add/").status_code == 403
        before = DeliveryAttempt.objects.count()
        admin.post(f"{ATTEMPTS}{attempt.pk}/change/", {"ok": "on"})
        assert DeliveryAttempt.objects.count() == before

    def test_redeliver_selected_attempts(
        self, admin: Client, failed_twice: Any, flaky: WebhookReceiver
    ) -> None:
        """The log's action sends the selected deliveries again, once per delivery."""
        ids = list(DeliveryAttempt.objects.values_list("pk", flat=True))
        answer = admin.post(
            ATTEMPTS, {"action": "redeliver_selected", "_selected_action": ids}, follow=True
        )
        assert answer.content.decode().count("delivered (HTTP 200)") == 2
        assert len(flaky.received) == 4
