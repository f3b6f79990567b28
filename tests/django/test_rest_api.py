"""The subscription REST API: a user's own subscriptions, checked by the core, 1.x clients
served, URLs masked, and a browsable API that reads well."""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from thorn_core.receiver import WebhookReceiver
from thorn_core.subscriptions import MAX_BODY_SIZE, check_subscription
from thorn_django import get_app
from thorn_django.models import FailureReset, Subscriber

pytestmark = pytest.mark.django_db

LIST = "/hooks/"
HOOK = "https://example.com/hook"


def detail(row: Any) -> str:
    """The API URL of one subscription."""
    return reverse("thorn:subscriber-detail", kwargs={"uuid": row.uuid})


def action(name: str, row: Any) -> str:
    """The API URL of an action route (``enable``, ``ping``...) of one subscription."""
    return reverse(f"thorn:subscriber-{name}", kwargs={"uuid": row.uuid})


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
        answer = client.post(LIST, {"event": "article.*", "url": HOOK}, format="json")
        assert answer.status_code == 201, answer.data
        body = answer.json()
        row = Subscriber.objects.get(uuid=body["uuid"])
        assert body["hmac_secret"] == row.hmac_secret
        assert row.user == alice
        assert "hmac_secret" not in client.get(detail(row)).json()
        assert "hmac_secret" not in client.get(LIST).json()[0]

    def test_the_answer_names_the_resource(self, client: APIClient, alice: Any) -> None:
        """201's ``Location`` is the new subscription's API URL, never the webhook's URL."""
        answer = client.post(LIST, {"event": "article.*", "url": HOOK}, format="json")
        row = Subscriber.objects.get()
        assert answer["Location"] == f"http://testserver{detail(row)}"
        assert client.get(answer["Location"]).json()["uuid"] == str(row.uuid)

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


class TestThorn1Clients:
    def test_the_answer_carries_the_1x_fields(
        self, client: APIClient, subscribe: Callable[..., Any], alice: Any
    ) -> None:
        """``id`` is the uuid, ``subscription`` the absolute resource URL, ``user`` the owner's
        id, alongside today's fields."""
        row = subscribe("article.created", HOOK, user=alice)
        body = client.get(detail(row)).json()
        assert body == {
            "uuid": str(row.uuid),
            "id": str(row.uuid),
            "subscription": f"http://testserver{detail(row)}",
            "event": "article.created",
            "url": HOOK,
            "content_type": "application/json",
            "hmac_digest": "sha256",
            "active": True,
            "filter": None,
            "version": None,
            "public_key": None,
            "rate_limit": None,
            "max_in_flight": None,
            "endpoint": None,
            "health": {"state": "closed", "failure_rate": 0.0, "next_probe_at": None},
            "user": alice.pk,
            "created_at": body["created_at"],
            "updated_at": body["updated_at"],
        }
        assert datetime.datetime.fromisoformat(body["created_at"]) == row.created_at

    def test_a_chosen_secret_is_kept(self, client: APIClient) -> None:
        """A 1.x client that sends its own ``hmac_secret`` gets it stored, not replaced."""
        secret = "my-own-secret-of-1.x"
        answer = client.post(
            LIST, {"event": "a.*", "url": HOOK, "hmac_secret": secret}, format="json"
        )
        assert answer.status_code == 201, answer.json()
        assert answer.json()["hmac_secret"] == secret
        assert Subscriber.objects.get().hmac_secret == secret

    def test_an_unusable_secret_is_refused(self, client: APIClient) -> None:
        """A secret too short or with spaces is a 400 under ``hmac_secret``; nothing is stored."""
        for secret in ("short", "a secret with spaces"):
            answer = client.post(
                LIST, {"event": "a.*", "url": HOOK, "hmac_secret": secret}, format="json"
            )
            assert answer.status_code == 400
            assert list(answer.json()) == ["hmac_secret"]
        assert not Subscriber.objects.exists()

    def test_an_update_may_set_the_secret(
        self, client: APIClient, subscribe: Callable[..., Any], alice: Any
    ) -> None:
        """``PATCH`` with a new secret stores it and shows it in that one answer."""
        row = subscribe("a.*", HOOK, user=alice)
        answer = client.patch(detail(row), {"hmac_secret": "rotated-secret-42"}, format="json")
        assert answer.json()["hmac_secret"] == "rotated-secret-42"
        row.refresh_from_db()
        assert row.hmac_secret == "rotated-secret-42"
        assert "hmac_secret" not in client.patch(detail(row), {}, format="json").json()


class TestMaskedUrls:
    def test_passwords_are_masked_in_every_answer(self, client: APIClient) -> None:
        """The creation, the list and the detail show ``user:***@``; the row keeps the password."""
        secret_url = "https://hook-user:hunter2@example.com/hook"
        created = client.post(LIST, {"event": "a.*", "url": secret_url}, format="json")
        row = Subscriber.objects.get()
        assert row.url == secret_url
        masked = "https://hook-user:***@example.com/hook"
        assert created.json()["url"] == masked
        assert client.get(LIST).json()[0]["url"] == masked
        assert client.get(detail(row)).json()["url"] == masked
        assert "hunter2" not in created.content.decode()

    def test_writing_back_the_masked_url_keeps_the_password(
        self, client: APIClient, subscribe: Callable[..., Any], alice: Any
    ) -> None:
        """A client that reads, edits and ``PUT``s a subscription does not lose the password."""
        row = subscribe("a.*", "https://u:hunter2@example.com/hook", user=alice)
        shown = client.get(detail(row)).json()
        answer = client.put(detail(row), {**shown, "event": "b.*"}, format="json")
        assert answer.status_code == 200, answer.json()
        row.refresh_from_db()
        assert (row.event, row.url) == ("b.*", "https://u:hunter2@example.com/hook")

    @pytest.mark.usefixtures("loopback")
    def test_ping_and_redelivery_answers_are_masked(
        self,
        client: APIClient,
        subscribe: Callable[..., Any],
        alice: Any,
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """A failing endpoint's messages name its URL without the password."""
        down = make_receiver(lambda _request: (503, b"down"))
        row = subscribe("a.*", down.url("/hook").replace("//", "//u:hunter2@"), user=alice)
        pinged = client.post(action("ping", row))
        assert pinged.status_code == 200
        assert pinged.json()["ok"] is False
        assert "u:***@127.0.0.1" in pinged.json()["error"]
        get_app().event("a.created").send({"n": 1}, sender=alice)
        replayed = client.post(action("redeliver", row), {}, format="json")
        outcome = replayed.json()
        assert outcome["failed"] == outcome["redelivered"] >= 1
        assert all("u:***@127.0.0.1" in d["error"] for d in outcome["deliveries"])
        listed = client.get(action("deliveries", row))
        assert "u:***@127.0.0.1" in listed.json()[0]["url"]
        for answer in (pinged, replayed, listed):
            assert b"hunter2" not in answer.content
        assert len(down.received) == 2 + outcome["redelivered"]


class TestActions:
    @pytest.mark.usefixtures("loopback")
    def test_ping_delivers_a_signed_test_event(
        self, client: APIClient, subscribe: Callable[..., Any], alice: Any, receiver: Any
    ) -> None:
        """``POST <uuid>/ping/`` sends ``thorn.ping`` to that subscription now."""
        row = subscribe("order.*", receiver.url("/hook"), user=alice)
        answer = client.post(action("ping", row))
        assert answer.status_code == 200
        assert answer.json()["ok"] is True
        assert answer.json()["event"] == "thorn.ping"
        assert [w.event for w in receiver.received] == ["thorn.ping"]

    def test_patch_active_re_enables_through_the_core(
        self, client: APIClient, subscribe: Callable[..., Any], alice: Any
    ) -> None:
        """Switching ``active`` back on resets the failure streak, as ``enable/`` does."""
        row = subscribe("a.*", HOOK, user=alice, active=False)
        answer = client.patch(detail(row), {"active": True}, format="json")
        assert answer.json()["active"] is True
        assert FailureReset.objects.filter(subscriber_uuid=row.uuid).exists()


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
            for name in ("enable", "ping", "redeliver", "deliveries"):
                method = client.get if name == "deliveries" else client.post
                assert method(action(name, target)).json() == {"detail": "Not found."}
        row.refresh_from_db()
        assert row.active
        assert row.user == bob
        assert Subscriber.objects.count() == 2

    def test_a_malformed_id_is_a_json_404(self, client: APIClient) -> None:
        """An id that is no uuid answers 404 in JSON, as an unknown one does."""
        for path in ("/hooks/not-a-uuid/", "/hooks/not-a-uuid/enable/"):
            answer = client.post(path) if "enable" in path else client.get(path)
            assert answer.status_code == 404
            assert answer.json() == {"detail": "Not found."}

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
            {"event": "e" * 201, "url": "https://example.com/"},
            {"event": "a.*", "url": "https://example.com/" + "p" * 2048},
            {"event": "a.*", "url": HOOK, "content_type": "a/" + "b" * 99},
            {"event": "a.*", "url": HOOK, "hmac_secret": "s" * 256},
        ],
    )
    def test_messages_per_field_as_the_core_says(
        self, client: APIClient, submitted: dict[str, str]
    ) -> None:
        """Bad patterns, hostile URLs, unknown types and digests, values longer than their
        columns (SQLite would store them): 400 with the core's messages."""
        answer = client.post(LIST, submitted, format="json")
        assert answer.status_code == 400
        assert answer.json() == check_subscription(get_app(), submitted)
        assert not Subscriber.objects.exists()

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("event", ["a.*"], "Not a valid string."),
            ("url", 5, "Not a valid string."),
            ("active", {}, "Must be a valid boolean."),
            ("active", "yes", "Must be a valid boolean."),
            ("hmac_digest", None, "This field may not be null."),
        ],
    )
    def test_wrong_types_are_named_not_converted(
        self, client: APIClient, field: str, value: Any, message: str
    ) -> None:
        """A list, a number, an object or null is refused under its field, never coerced."""
        answer = client.post(LIST, {"event": "a.*", "url": HOOK, field: value}, format="json")
        assert answer.status_code == 400
        assert answer.json() == {field: [message]}

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


class TestBodies:
    def test_a_body_over_the_limit_is_a_json_413(self, client: APIClient) -> None:
        """A body over 64 KiB is refused before it is read."""
        body = json.dumps({"event": "a.*", "url": HOOK, "pad": "x" * MAX_BODY_SIZE})
        answer = client.post(LIST, body, content_type="application/json")
        assert answer.status_code == 413
        assert answer.json() == {
            "detail": f"Request body too large: send at most {MAX_BODY_SIZE} bytes."
        }

    def test_a_smaller_django_limit_applies(self, client: APIClient, settings: Any) -> None:
        """``DATA_UPLOAD_MAX_MEMORY_SIZE`` below the core's cap is the limit."""
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
        answer = client.post(LIST, {"event": "a.*", "url": HOOK, "pad": "x" * 100}, format="json")
        assert answer.status_code == 413
        assert "at most 100 bytes" in answer.json()["detail"]

    def test_a_large_form_of_a_session_is_a_json_413(self, alice: Any, settings: Any) -> None:
        """With session login and CSRF checks, a form over the limit is refused before the
        CSRF check reads it (Django would answer its HTML 400)."""
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
        browser = APIClient(enforce_csrf_checks=True)
        assert browser.login(username="alice", password="pw")
        body = urlencode({"event": "a.*", "url": HOOK, "pad": "x" * 100})
        answer = browser.post(LIST, body, content_type="application/x-www-form-urlencoded")
        assert answer.status_code == 413
        assert answer.json() == {"detail": "Request body too large: send at most 100 bytes."}

    @pytest.mark.parametrize(
        ("body", "kind"), [("[]", "array"), ("null", "null"), ('"x"', "string"), ("7", "number")]
    )
    def test_the_body_must_be_an_object(self, client: APIClient, body: str, kind: str) -> None:
        """Any other JSON value is refused as a whole."""
        answer = client.post(LIST, body, content_type="application/json")
        assert answer.status_code == 400
        assert answer.json() == {
            "non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]
        }

    def test_malformed_json_is_a_400(self, client: APIClient) -> None:
        """A body that is not JSON names the parse error."""
        answer = client.post(LIST, "{not json", content_type="application/json")
        assert answer.status_code == 400
        assert answer.json()["detail"].startswith("JSON parse error - ")


class TestBrowsableApi:
    def page(self, client: APIClient, path: str) -> str:
        """The browsable API's HTML page of ``path``."""
        answer = client.get(path, HTTP_ACCEPT="text/html")
        assert answer.status_code == 200
        return answer.content.decode()

    def test_descriptions_read_as_text(self, client: APIClient) -> None:
        """The view's description is plain paragraphs: no reST markup, no broken lines."""
        page = self.page(client, LIST)
        assert "<p>Your webhook subscriptions.<br /><br />GET lists them." in page
        assert "``" not in page
        assert ":func:" not in page
        assert "<h1>Subscriptions</h1>" in page

    def test_the_raw_data_form_starts_valid(self, client: APIClient) -> None:
        """The create form is pre-filled with values that create a subscription as they are."""
        page = self.page(client, LIST)
        start = page.index('name="_content"')
        content = page[page.index(">", start) + 1 : page.index("</textarea>", start)]
        prefilled = json.loads(html.unescape(content))
        assert prefilled == {
            "event": "*",
            "url": "https://example.com/webhook",
            "content_type": "application/json",
            "hmac_digest": "sha256",
            "active": True,
        }
        assert client.post(LIST, prefilled, format="json").status_code == 201

    def test_the_raw_data_form_offers_an_allowed_event(
        self, client: APIClient, settings: Any
    ) -> None:
        """With ``THORN_EVENT_CHOICES`` the form starts from the first choice, not ``*``."""
        settings.THORN_EVENT_CHOICES = ["order.paid", "order.refunded"]
        page = self.page(client, LIST)
        assert html.escape('"event": "order.paid"', quote=True) in page

    def test_the_html_form_creates_too(self, client: APIClient) -> None:
        """The browsable API's HTML form (strings, a checkbox) is converted, then checked."""
        answer = client.post(LIST, {"event": "a.*", "url": HOOK, "active": "true"})
        assert answer.status_code == 201, answer.json()
        refused = client.post(LIST, {"event": "a.*.b", "url": HOOK})
        assert list(refused.json()) == ["event"]


class TestPermissions:
    def test_permission_classes_setting(self, client: APIClient, settings: Any) -> None:
        """``THORN_DRF_PERMISSION_CLASSES`` replaces the default permission."""
        settings.THORN_DRF_PERMISSION_CLASSES = ["rest_framework.permissions.IsAdminUser"]
        assert client.get(LIST).status_code == 403
