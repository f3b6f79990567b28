"""The admin: subscribers (lists, search, form, actions), the delivery log and the outbox,
with credentials and secrets masked, read as a person would want them."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from thorn_core.receiver import WebhookReceiver
from thorn_core.validators import display_url

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/thorn_django/subscriber/"
ATTEMPTS = "/admin/thorn_django/deliveryattempt/"
#: The password of the subscriber URLs with credentials.
PASSWORD = "hunter2"


@pytest.fixture
def admin_client_(db: None) -> Client:
    """A client logged in as a superuser."""
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(db: None) -> Client:
    """A client logged in as staff who may view subscribers and attempts, and change nothing."""
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_subscriber", "view_deliveryattempt"])
    )
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
        """A ping the validators refuse is reported as failed, the URL in lower case.

        Messages begin with a word: Django's admin capitalises the first letter of each.
        """
        row = subscribe("article.created", "http://127.0.0.1:9/blocked")
        answer = admin_client_.post(
            CHANGELIST, {"action": "send_test_ping", "_selected_action": [row.pk]}, follow=True
        )
        page = answer.content.decode()
        assert "Ping to http://127.0.0.1:9/blocked: failed (" in page
        assert "Http://" not in page


class TestActionPermissions:
    """Actions that send or re-enable need the change permission; viewing is not enough."""

    @pytest.mark.usefixtures("loopback")
    def test_view_only_staff_cannot_ping_or_redeliver(
        self, viewer: Client, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """A staff user with only the view permissions sees no actions and sends nothing."""
        row = subscribe("article.created", receiver.url("/ping"))

        page = viewer.get(CHANGELIST).content.decode()
        assert "send_test_ping" not in page
        assert "reenable" not in page
        viewer.post(CHANGELIST, {"action": "send_test_ping", "_selected_action": [row.pk]})
        attempts = viewer.get(ATTEMPTS).content.decode()
        assert "redeliver_selected" not in attempts
        assert receiver.received == []


# ---------------------------------------------------------------------------
# Credentials in subscriber URLs, secrets, and the subscriber form
# ---------------------------------------------------------------------------


@pytest.fixture
def secret_row(subscribe: Callable[..., Any]) -> Any:
    """A subscriber whose URL carries a password and a token in its query."""
    return subscribe("article.created", f"https://ada:{PASSWORD}@example.com/hook?token=t0k3n")


def form_data(row: Any, **changes: Any) -> dict[str, Any]:
    """The change form of ``row`` as a browser would post it back, with ``changes``."""
    data = {
        "event": row.event,
        "url": display_url(row.url),
        "active": "on",
        "content_type": row.content_type,
        "hmac_digest": row.hmac_digest,
        **changes,
    }
    return {name: value for name, value in data.items() if value is not None}


def csrf_token(page: str) -> str:
    """The CSRF token of the first form on ``page``."""
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


class TestCredentialsAreMasked:
    """A password or token in a subscriber URL never reaches a page the admin renders."""

    def test_changelist_masks(self, admin_client_: Client, secret_row: Any) -> None:
        """The list shows the URL with its password and token masked."""
        page = admin_client_.get(CHANGELIST).content.decode()
        assert "https://ada:***@example.com/hook?token=***" in page
        assert PASSWORD not in page
        assert "t0k3n" not in page

    def test_change_form_shows_the_url_masked(self, admin_client_: Client, secret_row: Any) -> None:
        """Even a superuser's form shows the URL masked; the secret stays read-only."""
        page = admin_client_.get(f"{CHANGELIST}{secret_row.pk}/change/").content.decode()
        assert 'value="https://ada:***@example.com/hook?token=***"' in page
        assert PASSWORD not in page
        assert secret_row.hmac_secret in page

    def test_view_only_staff_sees_url_and_secret_masked(
        self, viewer: Client, secret_row: Any
    ) -> None:
        """A user who may only view sees neither the URL's credentials nor the HMAC secret."""
        answer = viewer.get(f"{CHANGELIST}{secret_row.pk}/change/")
        page = answer.content.decode()
        assert answer.status_code == 200
        assert "https://ada:***@example.com/hook?token=***" in page
        assert PASSWORD not in page
        assert secret_row.hmac_secret not in page

    def test_search_never_matches_a_password(
        self, admin_client_: Client, secret_row: Any, subscribe: Callable[..., Any]
    ) -> None:
        """Searching for a password or token finds nothing; the shown parts still match."""
        subscribe("article.created", "https://example.com/other")
        for term in ("hunter", f"ada:{PASSWORD}", '"t0k3n"'):
            page = admin_client_.get(CHANGELIST, {"q": term}).content.decode()
            assert "example.com/hook" not in page, term
        page = admin_client_.get(CHANGELIST, {"q": "ada example.com/hook"}).content.decode()
        assert "ada:***@example.com/hook" in page
        assert "example.com/other" not in page

    def test_history_and_messages_mask(self, admin_client_: Client, secret_row: Any) -> None:
        """The saved message and the history entry name the subscriber with its URL masked."""
        from django.contrib.admin.models import LogEntry

        answer = admin_client_.post(
            f"{CHANGELIST}{secret_row.pk}/change/", form_data(secret_row), follow=True
        )
        assert "was changed successfully" in answer.content.decode()
        assert PASSWORD not in answer.content.decode()
        entry = LogEntry.objects.get()
        assert entry.object_repr == "article.created -> https://ada:***@example.com/hook?token=***"

    @pytest.mark.usefixtures("loopback")
    def test_ping_message_masks_and_receiver_gets_basic_auth(
        self, admin_client_: Client, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """The ping authenticates with the URL's credentials; its message shows them masked."""
        row = subscribe("article.created", f"http://ada:{PASSWORD}@127.0.0.1:{receiver.port}/p")
        answer = admin_client_.post(
            CHANGELIST, {"action": "send_test_ping", "_selected_action": [row.pk]}, follow=True
        )
        page = answer.content.decode()
        assert f"Ping to http://ada:***@127.0.0.1:{receiver.port}/p: delivered (HTTP 200)." in page
        assert PASSWORD not in page
        (webhook,) = receiver.received
        expected = base64.b64encode(f"ada:{PASSWORD}".encode()).decode()
        assert webhook.headers["authorization"] == f"Basic {expected}"


class TestCredentialsAreKept:
    """The change form keeps masked credentials unless the URL is typed anew."""

    def test_unchanged_masked_url_keeps_credentials(
        self, admin_client_: Client, secret_row: Any
    ) -> None:
        """Posting the form back with the masked URL (another field changed) keeps the URL."""
        stored = secret_row.url
        answer = admin_client_.post(
            f"{CHANGELIST}{secret_row.pk}/change/", form_data(secret_row, active=None)
        )
        assert answer.status_code == 302
        secret_row.refresh_from_db()
        assert secret_row.url == stored
        assert not secret_row.active

    def test_changed_url_keeping_the_mask_is_refused(
        self, admin_client_: Client, secret_row: Any
    ) -> None:
        """A new URL that still holds ``***`` is a form error: credentials are typed again."""
        stored = secret_row.url
        answer = admin_client_.post(
            f"{CHANGELIST}{secret_row.pk}/change/",
            form_data(secret_row, url="https://ada:***@example.com/moved"),
        )
        assert answer.status_code == 200
        assert "type the credentials again" in answer.content.decode()
        secret_row.refresh_from_db()
        assert secret_row.url == stored

    def test_credentials_typed_again_are_saved(
        self, admin_client_: Client, secret_row: Any
    ) -> None:
        """A URL typed with its credentials replaces the stored one."""
        new = "https://bob:s3cret@example.com/moved"
        answer = admin_client_.post(
            f"{CHANGELIST}{secret_row.pk}/change/", form_data(secret_row, url=new)
        )
        assert answer.status_code == 302
        secret_row.refresh_from_db()
        assert secret_row.url == new


class TestSubscriberFormIsChecked:
    """The subscriber form refuses, with a form error, what delivery would refuse."""

    ADD = f"{CHANGELIST}add/"

    def added(self, admin_client_: Client, **changes: Any) -> tuple[int, str]:
        """Post the add form with valid values and ``changes``; the status and the page."""
        data = {
            "event": "article.created",
            "url": "https://example.com/new",
            "active": "on",
            "content_type": "application/json",
            "hmac_digest": "sha256",
            **changes,
        }
        answer = admin_client_.post(self.ADD, data)
        return answer.status_code, answer.content.decode()

    def test_valid_subscriber_is_added(self, admin_client_: Client) -> None:
        """A valid subscription is stored (the other cases differ from it in one field)."""
        from thorn_django.models import Subscriber

        status, _ = self.added(admin_client_)
        assert status == 302
        assert Subscriber.objects.get().url == "https://example.com/new"

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"url": "http://169.254.169.254/latest/"}, "cloud metadata service"),
            ({"url": "http://ada:pw@10.0.0.1/"}, "http://ada:***@10.0.0.1/ refused"),
            ({"url": "https://example.com/\x00"}, "Null characters are not allowed"),
            ({"url": "ftp://example.com/"}, "refused"),
            ({"url": "https://" + "a" * 10_000 + ".com/"}, "at most"),
            ({"event": "article..created"}, "article..created"),
            ({"event": "e" * 10_000}, "at most"),
            ({"content_type": "text/nope"}, "is not supported"),
        ],
        ids=["metadata", "private", "nul", "scheme", "long-url", "pattern", "long-event", "type"],
    )
    def test_bad_input_is_a_form_error(
        self, admin_client_: Client, changes: dict[str, str], message: str
    ) -> None:
        """Each bad value is shown on the form (200, nothing stored), never a 500."""
        from thorn_django.models import Subscriber

        status, page = self.added(admin_client_, **changes)
        assert status == 200
        assert message in html.unescape(page)
        assert not Subscriber.objects.exists()

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("http://10.0.0.1/", "http://10.0.0.1/ refused: 10.0.0.1 is a private address"),
            ("https://" + "a" * 3000 + ".com/", "at most"),
        ],
        ids=["refused", "too-long"],
    )
    def test_one_message_per_refused_url(
        self, admin_client_: Client, url: str, message: str
    ) -> None:
        """A refused URL gets its one message, not a second about the empty value it left."""
        _, page = self.added(admin_client_, url=url)
        found = re.search(r'<ul class="errorlist" id="id_url_error">(.*?)</ul>', page)
        assert found is not None
        (error,) = re.findall(r"<li>(.*?)</li>", found.group(1))
        assert message in html.unescape(error)

    def test_error_of_a_field_off_the_form_is_a_form_error(self) -> None:
        """A custom admin without ``content_type`` gets its problem as a form-wide error."""
        from django.forms import modelform_factory

        from thorn_django.admin import SubscriberAdminForm
        from thorn_django.models import Subscriber

        form_class = modelform_factory(
            Subscriber, form=SubscriberAdminForm, fields=["event", "url"]
        )
        form = form_class(
            {"event": "article.created", "url": "https://example.com/x"},
            instance=Subscriber(content_type="text/nope"),
        )
        assert not form.is_valid()
        (error,) = form.non_field_errors()
        assert error.startswith("content_type: 'text/nope' is not supported")


# ---------------------------------------------------------------------------
# The delivery log
# ---------------------------------------------------------------------------


@pytest.fixture
def attempt(db: None) -> Any:
    """A logged failed attempt, with headers as a third-party log might have kept them."""
    from django.utils import timezone

    from thorn_django.models import DeliveryAttempt

    return DeliveryAttempt.objects.create(
        delivery_id="d-1",
        event="article.created",
        subscriber_uuid="00000000-0000-0000-0000-000000000001",
        url="https://ada:***@example.com/hook",
        attempt=1,
        ok=False,
        retryable=True,
        status_code=503,
        error="https://ada:***@example.com/hook answered 503",
        duration=0.1234,
        request_headers={
            "Hook-Event": "article.created",
            "Hook-HMAC": "c2lnbmF0dXJl",
            "Authorization": "Basic YWRhOmh1bnRlcjI=",
        },
        body=b'{"id": 1}',
        at=timezone.now(),
    )


@pytest.fixture
def logged(subscribe: Callable[..., Any], receiver: WebhookReceiver, loopback: Any) -> Any:
    """A real delivery to a receiver, logged; returns the attempt row."""
    from thorn_django import get_app
    from thorn_django.models import DeliveryAttempt

    # An event with no declared type: the catalog's model-event schema does not apply.
    subscribe("article.reviewed", f"http://ada:{PASSWORD}@127.0.0.1:{receiver.port}/p")
    (delivery,) = get_app().event("article.reviewed").send({"id": 1}).deliveries
    assert delivery.ok
    return DeliveryAttempt.objects.get()


class TestDeliveryLogReads:
    """An attempt's list row and page read as a person would want them."""

    def test_duration_in_milliseconds(self, admin_client_: Client, attempt: Any) -> None:
        """The duration is shown as whole milliseconds, in the list and on the page."""
        for address in (ATTEMPTS, f"{ATTEMPTS}{attempt.pk}/change/"):
            assert "123 ms" in admin_client_.get(address).content.decode()

    def test_headers_as_indented_json_with_credentials_masked(
        self, admin_client_: Client, attempt: Any
    ) -> None:
        """Headers are indented JSON; Authorization is masked and the signature shown."""
        page = html.unescape(admin_client_.get(f"{ATTEMPTS}{attempt.pk}/change/").content.decode())
        assert '{\n  "Authorization": "***",\n  "Hook-Event": "article.created",' in page
        assert '"Hook-HMAC": "c2lnbmF0dXJl"' in page
        assert "YWRhOmh1bnRlcjI=" not in page

    def test_real_attempt_masks_the_url(self, admin_client_: Client, logged: Any) -> None:
        """A delivery to a URL with credentials is logged and shown with them masked."""
        assert logged.url.startswith("http://ada:***@127.0.0.1:")
        for address in (ATTEMPTS, f"{ATTEMPTS}{logged.pk}/change/"):
            page = admin_client_.get(address).content.decode()
            assert "http://ada:***@127.0.0.1:" in page
            assert PASSWORD not in page


class TestDeliveryLogIsNotDeleted:
    """Nobody, not even a superuser, deletes delivery attempts or outbox events in the admin."""

    def test_no_delete_action_link_or_view(self, admin_client_: Client, attempt: Any) -> None:
        """No bulk delete action, no Delete link, and the delete view is forbidden."""
        from thorn_django.models import DeliveryAttempt

        assert "delete_selected" not in admin_client_.get(ATTEMPTS).content.decode()
        page = admin_client_.get(f"{ATTEMPTS}{attempt.pk}/change/").content.decode()
        assert "deletelink" not in page
        assert (
            admin_client_.post(f"{ATTEMPTS}{attempt.pk}/delete/", {"post": "yes"}).status_code
            == 403
        )
        admin_client_.post(
            ATTEMPTS, {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"}
        )
        assert DeliveryAttempt.objects.filter(pk=attempt.pk).exists()

    def test_outbox_events_are_not_deleted(self, admin_client_: Client) -> None:
        """The outbox list offers no delete either."""
        from thorn_django.models import OutboxEvent

        row = OutboxEvent.objects.create(message={"event": "article.created", "subscribers": []})
        assert (
            "delete_selected"
            not in admin_client_.get("/admin/thorn_django/outboxevent/").content.decode()
        )
        answer = admin_client_.post(
            f"/admin/thorn_django/outboxevent/{row.pk}/delete/", {"post": "yes"}
        )
        assert answer.status_code == 403
        assert OutboxEvent.objects.filter(pk=row.pk).exists()

    def test_outbox_message_masks_credentials(self, admin_client_: Client) -> None:
        """An outbox event's explicit subscribers and headers are shown with credentials masked."""
        from thorn_django.models import OutboxEvent

        row = OutboxEvent.objects.create(
            message={
                "event": "article.created",
                "headers": {"Authorization": "Bearer s3cr3t", "X-Trace": "1"},
                "subscribers": [
                    {"url": f"https://ada:{PASSWORD}@example.com/h", "hmac_secret": "whsec_x"}
                ],
            }
        )
        page = html.unescape(
            admin_client_.get(f"/admin/thorn_django/outboxevent/{row.pk}/change/").content.decode()
        )
        assert "https://ada:***@example.com/h" in page
        assert '"X-Trace": "1"' in page
        for secret in (PASSWORD, "s3cr3t", "whsec_x"):
            assert secret not in page


class TestRedeliverButton:
    """An attempt's page redelivers its delivery: a CSRF-protected POST, change permission."""

    def test_button_posts_and_redelivers(self, logged: Any, receiver: WebhookReceiver) -> None:
        """The button's form sends the delivery again under its id and says so, lower-case URL."""
        user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        page = client.get(f"{ATTEMPTS}{logged.pk}/change/").content.decode()
        action = f"{ATTEMPTS}{logged.pk}/redeliver/"
        assert f'action="{action}"' in page
        answer = client.post(action, {"csrfmiddlewaretoken": csrf_token(page)})
        assert answer.status_code == 302
        assert answer["Location"] == f"{ATTEMPTS}?q={logged.delivery_id}"
        listing = client.get(answer["Location"]).content.decode()
        assert f"Delivery {logged.delivery_id}: delivered (HTTP 200)." in listing
        first, second = receiver.wait_for(2)
        assert second.delivery_id == first.delivery_id == logged.delivery_id

    def test_post_without_csrf_token_is_refused(
        self, logged: Any, receiver: WebhookReceiver
    ) -> None:
        """A cross-site POST (no token) is refused and sends nothing."""
        user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        assert client.post(f"{ATTEMPTS}{logged.pk}/redeliver/").status_code == 403
        assert len(receiver.received) == 1

    def test_get_is_not_allowed(self, admin_client_: Client, logged: Any) -> None:
        """Only POST redelivers: a GET (a link, a prefetch) answers 405."""
        assert admin_client_.get(f"{ATTEMPTS}{logged.pk}/redeliver/").status_code == 405

    def test_view_only_staff_has_no_button_and_cannot_post(
        self, viewer: Client, logged: Any, receiver: WebhookReceiver
    ) -> None:
        """Without the right to change subscribers there is no button, and a POST is 403."""
        page = viewer.get(f"{ATTEMPTS}{logged.pk}/change/").content.decode()
        assert "/redeliver/" not in page
        assert viewer.post(f"{ATTEMPTS}{logged.pk}/redeliver/").status_code == 403
        assert len(receiver.received) == 1

    def test_unknown_attempt_is_404(self, admin_client_: Client, db: None) -> None:
        """An attempt id that does not exist (or is not a number) answers 404."""
        for object_id in ("999999", "nope"):
            assert admin_client_.post(f"{ATTEMPTS}{object_id}/redeliver/").status_code == 404

    def test_deactivated_subscription_is_reported(
        self, admin_client_: Client, logged: Any, receiver: WebhookReceiver
    ) -> None:
        """A delivery whose subscription is off is not sent; the message says why."""
        from thorn_django.models import Subscriber

        Subscriber.objects.update(active=False)
        answer = admin_client_.post(f"{ATTEMPTS}{logged.pk}/redeliver/", follow=True)
        assert "is deactivated; re-enable it first" in answer.content.decode()
        assert len(receiver.received) == 1
