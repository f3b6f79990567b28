"""Subscriptions against the catalog in Django: payload filters and version pins stored,
checked by the API and the admin, and applied to real deliveries; strict patterns."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from thorn_core import Event
from thorn_core.catalog import Catalog
from thorn_core.fanout import resolve_subscribers
from thorn_core.message import EventMessage
from thorn_core.receiver import WebhookReceiver
from thorn_django import get_app
from thorn_django.models import Subscriber

pytestmark = pytest.mark.django_db

LIST = "/hooks/"
HOOK = "https://example.com/hook"
CHANGELIST = "/admin/thorn_django/subscriber/"
LARGE = {"amount": {"$gte": 100}}
ORDER_SCHEMA = {"type": "object", "properties": {"amount": {"type": "number"}}}


def detail(row: Any) -> str:
    """The API URL of one subscription."""
    return reverse("thorn:subscriber-detail", kwargs={"uuid": row.uuid})


@pytest.fixture
def client(make_user: Callable[[str], Any]) -> APIClient:
    """An API client logged in as a user."""
    api = APIClient()
    api.force_authenticate(make_user("alice"))
    return api


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    """The project's catalog holding only ``order.placed`` versions 1 and 2 and
    ``order.refunded``; what it held before is put back afterwards."""
    held = get_app().catalog
    before = held.types()
    declare_orders(held)
    yield held
    held.clear()
    for declared in before:
        held.add(declared)


@pytest.fixture
def strict(settings: Any, catalog: Catalog) -> Catalog:
    """THORN_EVENT_TYPES_STRICT on, with the catalog above (declared again: the setting
    change reconfigures the app, which declares the project's model events)."""
    settings.THORN_EVENT_TYPES_STRICT = True
    declare_orders(catalog)
    return catalog


def declare_orders(held: Catalog) -> None:
    """Leave only ``order.placed`` versions 1 and 2 and ``order.refunded`` in ``held``."""
    held.clear()
    held.declare("order.placed", schema=ORDER_SCHEMA, version="1")
    held.declare("order.placed", schema=ORDER_SCHEMA, version="2")
    held.declare("order.refunded", schema=ORDER_SCHEMA)


class TestFilterThroughTheAPI:
    """The REST API takes, checks, stores and shows a subscription's payload filter."""

    def test_create_with_a_filter(self, client: APIClient) -> None:
        """A valid filter is stored as JSON and shown back."""
        answer = client.post(
            LIST, {"event": "order.*", "url": HOOK, "filter": LARGE}, format="json"
        )
        assert answer.status_code == 201, answer.data
        assert answer.json()["filter"] == LARGE
        row = Subscriber.objects.get()
        assert row.filter == LARGE
        assert row.as_subscriber().filter == LARGE
        assert client.get(detail(row)).json()["filter"] == LARGE

    def test_bad_operator_is_a_400_naming_its_path(self, client: APIClient) -> None:
        """An unknown operator deep in the filter is refused with its JSON pointer."""
        bad = {"$or": [{"amount": {"$gte": 100}}, {"amount": {"$gtee": 5}}]}
        answer = client.post(LIST, {"event": "order.*", "url": HOOK, "filter": bad}, format="json")
        assert answer.status_code == 400
        (message,) = answer.json()["filter"]
        assert message.startswith("Invalid filter at /$or/1/amount/$gtee: unknown operator")
        assert not Subscriber.objects.exists()

    @pytest.mark.parametrize("value", [[{"a": 1}], "amount>100", 3])
    def test_filter_must_be_an_object(self, client: APIClient, value: Any) -> None:
        """A filter that is no JSON object is refused, never converted."""
        answer = client.post(
            LIST, {"event": "order.*", "url": HOOK, "filter": value}, format="json"
        )
        assert answer.status_code == 400
        assert answer.json()["filter"][0].startswith("A filter is a JSON object or null")

    def test_patch_replaces_and_removes_the_filter(
        self, client: APIClient, subscribe: Callable[..., Any]
    ) -> None:
        """PATCH sets a filter, and null takes it away."""
        answer = client.post(LIST, {"event": "order.*", "url": HOOK}, format="json")
        row = Subscriber.objects.get(uuid=answer.json()["uuid"])
        assert row.filter is None
        assert client.patch(detail(row), {"filter": LARGE}, format="json").status_code == 200
        row.refresh_from_db()
        assert row.filter == LARGE
        answer = client.patch(detail(row), {"filter": None}, format="json")
        assert answer.status_code == 200
        assert answer.json()["filter"] is None
        row.refresh_from_db()
        assert row.filter is None
        assert Subscriber.objects.filter(filter__isnull=True).count() == 1


class TestFilteredDelivery:
    """Stored filters decide who receives a send, with the one indexed query."""

    @pytest.mark.usefixtures("loopback")
    def test_only_the_large_orders(
        self, subscribe: Callable[..., Any], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """{"amount": {"$gte": 100}} receives the large orders; an unfiltered one every order."""
        large, every = make_receiver(), make_receiver()
        subscribe("order.placed", large.url("/large"), filter=LARGE)
        subscribe("order.*", every.url("/every"))
        placed = Event("order.placed", app=get_app())

        for number, amount in enumerate([20, 100, 99.99, 2500]):
            assert placed.send({"id": number, "amount": amount}).ok

        every.wait_for(4, 5.0)
        assert [r.json()["id"] for r in large.wait_for(2, 5.0)] == [1, 3]
        assert [r.json()["id"] for r in every.received] == [0, 1, 2, 3]

    def test_one_query(self, subscribe: Callable[..., Any], django_assert_num_queries: Any) -> None:
        """Resolving subscribers with filters and pins is still the one indexed query."""
        for n in range(5):
            subscribe("order.placed", f"https://example.com/{n}", filter={"amount": {"$gt": n}})
        subscribe("order.*", HOOK, version="3")
        subscribe("*", HOOK)
        sent = EventMessage(
            event="order.placed",
            data={"amount": 3},
            timeout=5.0,
            retry=False,
            retry_max=0,
            retry_delay=0.0,
        )

        with django_assert_num_queries(1):
            found = resolve_subscribers(get_app(), sent)

        assert sorted(s.url for s in found) == [
            "https://example.com/0",
            "https://example.com/1",
            "https://example.com/2",
            HOOK,
        ]


class TestVersionPins:
    """A version pin names a declared version; a pinned subscription gets only that version."""

    def test_pin_a_declared_version(self, client: APIClient, catalog: Catalog) -> None:
        """A declared version of a matching type is accepted and stored."""
        answer = client.post(
            LIST, {"event": "order.placed", "url": HOOK, "version": "1"}, format="json"
        )
        assert answer.status_code == 201, answer.data
        assert answer.json()["version"] == "1"
        assert Subscriber.objects.get().version == "1"

    def test_unknown_version_lists_the_declared_ones(
        self, client: APIClient, catalog: Catalog
    ) -> None:
        """A version no matching type declares is a 400 listing those that exist."""
        answer = client.post(LIST, {"event": "order.*", "url": HOOK, "version": "7"}, format="json")
        assert answer.status_code == 400
        (message,) = answer.json()["version"]
        assert "'7' is not a declared version" in message
        assert "order.placed 1, order.placed 2, order.refunded 1" in message

    def test_patch_of_the_version_alone_checks_the_stored_pattern(
        self, client: APIClient, catalog: Catalog
    ) -> None:
        """Changing only the pin is checked against the subscription's stored pattern."""
        answer = client.post(LIST, {"event": "order.refunded", "url": HOOK}, format="json")
        row = Subscriber.objects.get(uuid=answer.json()["uuid"])
        refused = client.patch(detail(row), {"version": "2"}, format="json")
        assert refused.status_code == 400
        assert "order.refunded 1" in refused.json()["version"][0]
        assert client.patch(detail(row), {"version": "1"}, format="json").status_code == 200

    def test_pin_of_an_undeclared_event(self, client: APIClient, catalog: Catalog) -> None:
        """A pin on a pattern no type matches would receive nothing: refused."""
        answer = client.post(LIST, {"event": "user.*", "url": HOOK, "version": "1"}, format="json")
        assert answer.status_code == 400
        assert "matches no declared event type" in answer.json()["version"][0]

    @pytest.mark.usefixtures("loopback")
    def test_pinned_subscription_receives_only_its_version(
        self,
        subscribe: Callable[..., Any],
        make_receiver: Callable[..., WebhookReceiver],
        catalog: Catalog,
    ) -> None:
        """Sends are of the newest declared version (2): a pin on 1 receives none of them."""
        old, new, unpinned = make_receiver(), make_receiver(), make_receiver()
        subscribe("order.placed", old.url(), version="1")
        subscribe("order.placed", new.url(), version="2")
        subscribe("order.placed", unpinned.url())

        assert Event("order.placed", app=get_app()).send({"amount": 5}).ok

        assert len(new.wait_for(1, 5.0)) == 1
        assert len(unpinned.wait_for(1, 5.0)) == 1
        assert old.received == []


class TestStrictPatterns:
    """THORN_EVENT_TYPES_STRICT refuses a pattern that matches no declared type."""

    def test_unknown_pattern_lists_the_known_types(
        self, client: APIClient, strict: Catalog
    ) -> None:
        """The 400 names every declared event type (the project's model events too)."""
        answer = client.post(LIST, {"event": "user.*", "url": HOOK}, format="json")
        assert answer.status_code == 400
        (message,) = answer.json()["event"]
        known = strict.names()
        assert {"order.placed", "order.refunded"} <= set(known)
        assert message == (
            f"'user.*' matches no declared event type; known types: {', '.join(known)}"
        )

    @pytest.mark.parametrize("pattern", ["order.placed", "order.*", "*.refunded", "*"])
    def test_matching_patterns_are_accepted(
        self, client: APIClient, strict: Catalog, pattern: str
    ) -> None:
        """An exact name, a prefix, a suffix or ``*`` that matches a type is fine."""
        answer = client.post(LIST, {"event": pattern, "url": HOOK}, format="json")
        assert answer.status_code == 201, answer.data

    def test_not_strict_accepts_any_pattern(self, client: APIClient, catalog: Catalog) -> None:
        """Without the setting, patterns are not compared with the catalog."""
        answer = client.post(LIST, {"event": "user.*", "url": HOOK}, format="json")
        assert answer.status_code == 201, answer.data

    def test_model_full_clean(self, strict: Catalog) -> None:
        """``full_clean()`` (forms, scripts) refuses it with the same message."""
        from django.core.exceptions import ValidationError

        row = Subscriber(event="user.*", url=HOOK)
        with pytest.raises(ValidationError, match=r"known types: .*order\.placed"):
            row.full_clean()


class TestAdmin:
    """The admin shows, checks and stores the filter and the version pin."""

    @pytest.fixture
    def admin(self, db: None) -> Client:
        """A client logged in as a superuser."""
        user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        client = Client()
        client.force_login(user)
        return client

    def form(self, **fields: str) -> dict[str, str]:
        """The add form's fields."""
        return {
            "event": "order.placed",
            "url": HOOK,
            "active": "on",
            "content_type": "application/json",
            "hmac_digest": "sha256",
            **fields,
        }

    def test_add_with_filter_and_pin(self, admin: Client, catalog: Catalog) -> None:
        """A valid filter and pin are saved from the add form."""
        answer = admin.post(
            f"{CHANGELIST}add/", self.form(filter='{"amount": {"$gte": 100}}', version="2")
        )
        assert answer.status_code == 302, answer.content.decode()[:2000]
        row = Subscriber.objects.get()
        assert (row.filter, row.version) == (LARGE, "2")
        page = admin.get(f"{CHANGELIST}{row.pk}/change/").content.decode()
        assert "$gte" in page
        assert 'name="version"' in page

    def test_bad_filter_is_a_form_error(self, admin: Client) -> None:
        """The form shows the core's message with the JSON pointer."""
        answer = admin.post(f"{CHANGELIST}add/", self.form(filter='{"amount": {"$gtee": 1}}'))
        assert answer.status_code == 200
        assert "Invalid filter at /amount/$gtee" in answer.content.decode()
        assert not Subscriber.objects.exists()

    def test_strict_pattern_is_a_form_error(self, admin: Client, strict: Catalog) -> None:
        """Under strict types, the add form refuses an unknown pattern."""
        answer = admin.post(f"{CHANGELIST}add/", self.form(event="user.created"))
        assert answer.status_code == 200
        assert "matches no declared event type" in answer.content.decode()
        assert not Subscriber.objects.exists()


class TestCommandLine:
    """``manage.py thorn_subscribers add --filter --event-version``."""

    def run(self, *args: str) -> str:
        """Run the command; what it printed."""
        out = StringIO()
        call_command("thorn_subscribers", "add", *args, stdout=out)
        return out.getvalue()

    def test_add_with_filter_and_pin(self, catalog: Catalog) -> None:
        """Both are checked and stored."""
        printed = self.run(
            "order.placed", HOOK, "--filter", '{"amount": {"$gte": 100}}', "--event-version", "2"
        )
        assert printed.startswith("Added subscriber")
        row = Subscriber.objects.get()
        assert (row.filter, row.version) == (LARGE, "2")

    def test_bad_filter(self) -> None:
        """A bad operator is a command error naming its path; nothing is stored."""
        with pytest.raises(CommandError, match=r"Invalid filter at /amount/\$gtee"):
            self.run("order.*", HOOK, "--filter", '{"amount": {"$gtee": 1}}')
        assert not Subscriber.objects.exists()

    def test_strict_pattern(self, strict: Catalog) -> None:
        """Under strict types, an unknown pattern is refused listing the known ones."""
        with pytest.raises(CommandError, match=r"known types: .*order\.placed, order\.refunded"):
            self.run("user.*", HOOK)
        assert not Subscriber.objects.exists()
