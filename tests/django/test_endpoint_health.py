"""Endpoint health in the Django adapter: the limits of a subscription (model, API, admin,
migration), its endpoint's circuit shown read-only, and ``manage.py thorn_endpoints``."""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from thorn_core.health import EndpointStatus
from thorn_django import get_app
from thorn_django.models import Subscriber

pytestmark = pytest.mark.django_db

LIST = "/hooks/"
HOOK = "https://example.com/hook"
CHANGELIST = "/admin/thorn_django/subscriber/"


def detail(row: Any) -> str:
    """The API URL of one subscription."""
    return reverse("thorn:subscriber-detail", kwargs={"uuid": row.uuid})


def fresh_endpoint() -> str:
    """An endpoint name no other test uses (the app's health store outlives a test)."""
    return f"pool-{uuid.uuid4().hex}"


def open_circuit(key: str) -> EndpointStatus:
    """Fail attempts to ``key`` until its circuit opens, as deliveries would."""
    health = get_app().health
    for _ in range(get_app().settings.circuit_min_requests):
        status = health.record(key, ok=False, duration=0.01)
    assert status.state == "open"
    return status


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


@pytest.fixture
def admin_client_(db: None) -> Client:
    """A client logged in as a superuser."""
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    admin = Client()
    admin.force_login(user)
    return admin


class CountingStatuses:
    """Counts the health store's reads by callers (``statuses`` batches, single ``status``
    reads outside a batch), then reads as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self._in_batch = False
        store = get_app().health
        statuses, status = store.statuses, store.status

        def counted_statuses(keys: Any) -> dict[str, EndpointStatus]:
            keys = list(keys)
            self.batches.append(keys)
            self._in_batch = True
            try:
                return statuses(keys)
            finally:
                self._in_batch = False

        def counted_status(key: str) -> EndpointStatus:
            if not self._in_batch:
                self.singles.append(key)
            return status(key)

        monkeypatch.setattr(store, "statuses", counted_statuses)
        monkeypatch.setattr(store, "status", counted_status)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> CountingStatuses:
    """The reads of the health store during the test."""
    return CountingStatuses(monkeypatch)


class TestApiFields:
    def test_limits_are_stored_and_cleared(self, client: APIClient) -> None:
        """``rate_limit``, ``max_in_flight`` and ``endpoint`` are stored as sent, delivered
        to the core's subscriber, and null clears them back to the site defaults."""
        endpoint = fresh_endpoint()
        answer = client.post(
            LIST,
            {
                "event": "article.*",
                "url": HOOK,
                "rate_limit": 2.5,
                "max_in_flight": 3,
                "endpoint": endpoint,
            },
            format="json",
        )
        assert answer.status_code == 201, answer.data
        body = answer.json()
        assert (body["rate_limit"], body["max_in_flight"], body["endpoint"]) == (2.5, 3, endpoint)
        row = Subscriber.objects.get(uuid=body["uuid"])
        core = row.as_subscriber()
        assert (core.rate_limit, core.max_in_flight, core.endpoint) == (2.5, 3, endpoint)

        cleared = {"rate_limit": None, "max_in_flight": None, "endpoint": None}
        changed = client.patch(detail(row), cleared, format="json")
        assert changed.status_code == 200, changed.data
        row.refresh_from_db()
        assert (row.rate_limit, row.max_in_flight, row.endpoint) == (None, None, None)

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("rate_limit", 0, "Ensure this value is greater than 0."),
            ("rate_limit", -1.5, "Ensure this value is greater than 0."),
            ("rate_limit", "5", "A valid number is required."),
            ("rate_limit", True, "A valid number is required."),
            ("rate_limit", 10**7, "Ensure this value is less than or equal to 1000000."),
            ("max_in_flight", 0, "Ensure this value is greater than or equal to 1."),
            ("max_in_flight", -3, "Ensure this value is greater than or equal to 1."),
            ("max_in_flight", 1.5, "A valid integer is required."),
            ("endpoint", "", "This field may not be blank."),
            ("endpoint", "two words", "Use a name without spaces."),
            ("endpoint", "x" * 256, "Ensure this field has no more than 255 characters."),
        ],
    )
    def test_bad_limits_are_a_400(
        self, client: APIClient, field: str, value: Any, message: str
    ) -> None:
        """A non-positive or mistyped limit, or a bad endpoint name, is refused with the
        core's message under its field, and nothing is stored."""
        answer = client.post(LIST, {"event": "article.*", "url": HOOK, field: value}, format="json")
        assert answer.status_code == 400
        assert answer.json() == {field: [message]}
        assert not Subscriber.objects.exists()

    def test_a_bad_update_is_a_400(
        self, client: APIClient, subscribe: Callable[..., Any], alice: Any
    ) -> None:
        """PATCH refuses a zero rate limit and keeps the stored one."""
        row = subscribe("article.*", HOOK, user=alice, rate_limit=5.0)
        answer = client.patch(detail(row), {"rate_limit": 0}, format="json")
        assert answer.status_code == 400
        assert answer.json() == {"rate_limit": ["Ensure this value is greater than 0."]}
        row.refresh_from_db()
        assert row.rate_limit == 5.0


class TestApiHealth:
    def test_an_open_circuit_is_shown(
        self, client: APIClient, subscribe: Callable[..., Any], alice: Any
    ) -> None:
        """``health`` says the circuit is open, the failure rate, and when it probes next."""
        endpoint = fresh_endpoint()
        row = subscribe("article.*", HOOK, user=alice, endpoint=endpoint)
        status = open_circuit(endpoint)
        health = client.get(detail(row)).json()["health"]
        assert health["state"] == "open"
        assert health["failure_rate"] == 1.0
        assert status.next_probe_at is not None
        probe = datetime.datetime.fromisoformat(health["next_probe_at"])
        assert probe.timestamp() == pytest.approx(status.next_probe_at)

    def test_health_is_read_only(
        self, client: APIClient, subscribe: Callable[..., Any], alice: Any
    ) -> None:
        """A ``health`` in the body is ignored: the state comes from the store only."""
        endpoint = fresh_endpoint()
        row = subscribe("article.*", HOOK, user=alice, endpoint=endpoint)
        answer = client.patch(detail(row), {"health": {"state": "open"}}, format="json")
        assert answer.status_code == 200
        assert answer.json()["health"]["state"] == "closed"

    def test_a_list_reads_the_store_once(
        self,
        client: APIClient,
        subscribe: Callable[..., Any],
        alice: Any,
        reads: CountingStatuses,
    ) -> None:
        """A list of five subscriptions on two endpoints reads the health store in one call."""
        shared, other = fresh_endpoint(), fresh_endpoint()
        for n in range(4):
            subscribe(f"article.e{n}", HOOK, user=alice, endpoint=shared)
        subscribe("article.other", HOOK, user=alice, endpoint=other)
        open_circuit(other)
        reads.batches.clear()
        body = client.get(LIST).json()
        assert len(body) == 5
        assert len(reads.batches) == 1
        assert sorted(reads.batches[0]) == sorted([shared, other])
        assert reads.singles == []
        states = {item["endpoint"]: item["health"]["state"] for item in body}
        assert states == {shared: "closed", other: "open"}


class TestAdmin:
    def test_the_list_shows_health_in_one_read(
        self, admin_client_: Client, subscribe: Callable[..., Any], reads: CountingStatuses
    ) -> None:
        """The change list has an endpoint-health column, read once for the page."""
        down, up = fresh_endpoint(), fresh_endpoint()
        subscribe("article.a", HOOK, endpoint=down)
        subscribe("article.b", HOOK, endpoint=down)
        subscribe("article.c", HOOK, endpoint=up)
        open_circuit(down)
        reads.batches.clear()
        page = admin_client_.get(CHANGELIST).content.decode()
        assert "endpoint health" in page.lower()
        assert page.count("open (100% failed), next probe") == 2
        assert "closed (0% failed)" in page
        assert len(reads.batches) == 1
        assert reads.singles == []

    def test_the_change_page_shows_health_and_limits(
        self, admin_client_: Client, subscribe: Callable[..., Any]
    ) -> None:
        """The change page shows the health read-only and the limits as fields."""
        endpoint = fresh_endpoint()
        row = subscribe("article.a", HOOK, endpoint=endpoint, rate_limit=4.0)
        open_circuit(endpoint)
        page = admin_client_.get(f"{CHANGELIST}{row.pk}/change/").content.decode()
        assert "open (100% failed), next probe" in page
        assert 'name="rate_limit"' in page
        assert 'name="max_in_flight"' in page
        assert 'name="endpoint"' in page

    def _post(self, admin: Client, row: Any, **limits: str) -> Any:
        data = {
            "event": row.event,
            "url": row.url,
            "active": "on",
            "content_type": row.content_type,
            "hmac_digest": row.hmac_digest,
            "rate_limit": "",
            "max_in_flight": "",
            "endpoint": "",
            **limits,
        }
        return admin.post(f"{CHANGELIST}{row.pk}/change/", data)

    def test_the_form_saves_limits(
        self, admin_client_: Client, subscribe: Callable[..., Any]
    ) -> None:
        """The form stores the limits; empty fields store NULL (the site defaults)."""
        row = subscribe("article.a", HOOK)
        answer = self._post(admin_client_, row, rate_limit="7.5", max_in_flight="2")
        assert answer.status_code == 302, answer.content.decode()[:2000]
        row.refresh_from_db()
        assert (row.rate_limit, row.max_in_flight, row.endpoint) == (7.5, 2, None)

    def test_the_form_refuses_a_zero_rate(
        self, admin_client_: Client, subscribe: Callable[..., Any]
    ) -> None:
        """A rate limit of 0 is a form error with the core's message; nothing is saved."""
        row = subscribe("article.a", HOOK)
        answer = self._post(admin_client_, row, rate_limit="0")
        assert answer.status_code == 200
        assert "Ensure this value is greater than 0." in answer.content.decode()
        row.refresh_from_db()
        assert row.rate_limit is None


class TestCommand:
    def test_stored_endpoints_are_listed(self, subscribe: Callable[..., Any]) -> None:
        """``thorn_endpoints`` lists the endpoints of stored subscribers, open ones first,
        with their state, failure rate and next probe."""
        down, up = fresh_endpoint(), fresh_endpoint()
        subscribe("article.a", HOOK, endpoint=down)
        subscribe("article.b", HOOK, endpoint=down)
        subscribe("article.c", HOOK, endpoint=up)
        open_circuit(down)
        out = StringIO()
        call_command("thorn_endpoints", down, up, stdout=out)
        lines = out.getvalue().splitlines()
        assert lines[0].split()[:2] == ["ENDPOINT", "STATE"]
        assert lines[1].split()[:3] == [down, "open", "100%"]
        assert lines[1].split()[-1] == "2"
        assert lines[2].split()[:3] == [up, "closed", "0%"]

    def test_json(self, subscribe: Callable[..., Any]) -> None:
        """``--json`` prints every status field, one object per endpoint."""
        endpoint = fresh_endpoint()
        subscribe("article.a", HOOK, endpoint=endpoint)
        out = StringIO()
        call_command("thorn_endpoints", endpoint, "--json", stdout=out)
        (report,) = json.loads(out.getvalue())
        assert report["endpoint"] == endpoint
        assert report["state"] == "closed"
        assert report["subscriptions"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_adds_and_removes_the_columns() -> None:
    """0003 adds ``rate_limit``, ``max_in_flight`` and ``endpoint`` (NULL by default) to a
    table with rows, and reverses cleanly."""

    def columns() -> set[str]:
        with connection.cursor() as cursor:
            table = Subscriber._meta.db_table
            return {c.name for c in connection.introspection.get_table_description(cursor, table)}

    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("thorn_django")
    try:
        executor.migrate([("thorn_django", "0002_delivery_log_outbox")])
        assert not {"rate_limit", "max_in_flight", "endpoint"} & columns()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {Subscriber._meta.db_table} "  # noqa: S608 - our own table name
                "(uuid, event, url, hmac_secret, hmac_digest, content_type, active, "
                "created_at, updated_at) VALUES (%s, 'a.b', %s, %s, 'sha256', "
                "'application/json', %s, %s, %s)",
                [
                    uuid.uuid4().hex if connection.vendor == "sqlite" else str(uuid.uuid4()),
                    HOOK,
                    "s" * 38,
                    True,
                    datetime.datetime.now(datetime.timezone.utc),
                    datetime.datetime.now(datetime.timezone.utc),
                ],
            )
        executor = MigrationExecutor(connection)
        executor.migrate([("thorn_django", "0003_endpoint_limits")])
        assert {"rate_limit", "max_in_flight", "endpoint"} <= columns()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT rate_limit, max_in_flight, endpoint FROM {Subscriber._meta.db_table}"  # noqa: S608
            )
            assert cursor.fetchall() == [(None, None, None)]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
