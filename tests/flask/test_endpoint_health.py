"""Endpoint health in the Flask adapter: a subscription's limits through the API (checked by
the core), its endpoint's circuit shown read-only, and ``flask thorn endpoints``."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import flask
import pytest
from flask.testing import FlaskClient

from thorn_core.health import EndpointStatus
from thorn_flask import get_state

from .app import store_subscription
from .test_api import HOOK, as_user, create, stored, with_api


@pytest.fixture
def client(app: flask.Flask) -> FlaskClient:
    """A test client of ``app`` with the API at ``/hooks``."""
    return with_api(app)


def open_circuit(app: flask.Flask, key: str) -> EndpointStatus:
    """Fail attempts to ``key`` until its circuit opens, as deliveries would."""
    core = get_state(app).core
    for _ in range(core.settings.circuit_min_requests):
        status = core.health.record(key, ok=False, duration=0.01)
    assert status.state == "open"
    return status


class TestApiFields:
    def test_limits_are_stored_and_cleared(self, app: flask.Flask, client: FlaskClient) -> None:
        """The limits are stored as sent, reach the core's subscriber, and null clears them."""
        body = create(client, "ada", rate_limit=50, max_in_flight=4, endpoint="pool-a")
        assert (body["rate_limit"], body["max_in_flight"], body["endpoint"]) == (50, 4, "pool-a")
        core = stored(app, body["uuid"]).to_subscriber()
        assert (core.rate_limit, core.max_in_flight, core.endpoint) == (50, 4, "pool-a")
        answer = client.patch(
            f"/hooks/{body['uuid']}", json={"rate_limit": None}, headers=as_user("ada")
        )
        assert answer.status_code == 200, answer.json
        row = stored(app, body["uuid"])
        assert (row.rate_limit, row.max_in_flight, row.endpoint) == (None, 4, "pool-a")

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("rate_limit", 0, "Ensure this value is greater than 0."),
            ("rate_limit", "5", "A valid number is required."),
            ("max_in_flight", -1, "Ensure this value is greater than or equal to 1."),
            ("max_in_flight", 2.5, "A valid integer is required."),
            ("endpoint", "two words", "Use a name without spaces."),
        ],
    )
    def test_bad_limits_are_a_400(
        self, app: flask.Flask, client: FlaskClient, field: str, value: Any, message: str
    ) -> None:
        """A non-positive or mistyped limit is refused with the core's message (as the Django
        API's), and nothing is stored."""
        answer = client.post(
            "/hooks/", json={"event": "a.*", "url": HOOK, field: value}, headers=as_user("ada")
        )
        assert answer.status_code == 400
        assert answer.json == {field: [message]}
        assert client.get("/hooks/", headers=as_user("ada")).json == []


class TestApiHealth:
    def test_an_open_circuit_is_shown(self, app: flask.Flask, client: FlaskClient) -> None:
        """``health`` says the circuit is open, the failure rate, and when it probes next."""
        body = create(client, "ada")
        status = open_circuit(app, "http://127.0.0.1:8000")  # HOOK's origin
        health = client.get(f"/hooks/{body['uuid']}", headers=as_user("ada")).json["health"]
        assert health["state"] == "open"
        assert health["failure_rate"] == 1.0
        assert status.next_probe_at is not None
        probe = datetime.datetime.fromisoformat(health["next_probe_at"])
        assert probe.timestamp() == pytest.approx(status.next_probe_at)

    def test_a_list_reads_the_store_once(
        self, app: flask.Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Listing four subscriptions on two endpoints reads the health store in one call."""
        for n in range(3):
            create(client, "ada", event=f"a.e{n}")
        create(client, "ada", event="a.other", endpoint="pool-b")
        open_circuit(app, "pool-b")
        store = get_state(app).core.health
        calls: list[list[str]] = []
        singles: list[str] = []
        statuses, status = store.statuses, store.status

        def counted(keys: Any) -> dict[str, EndpointStatus]:
            calls.append(list(keys))
            monkeypatch.setattr(store, "status", status)  # the store's own reads in a batch
            try:
                return statuses(calls[-1])
            finally:
                monkeypatch.setattr(store, "status", single)

        def single(key: str) -> EndpointStatus:
            singles.append(key)
            return status(key)

        monkeypatch.setattr(store, "statuses", counted)
        monkeypatch.setattr(store, "status", single)
        body = client.get("/hooks/", headers=as_user("ada")).json
        assert len(calls) == 1
        assert singles == []
        assert sorted(calls[0]) == ["http://127.0.0.1:8000", "pool-b"]
        states = sorted((item["endpoint"] or "-", item["health"]["state"]) for item in body)
        assert states == [("-", "closed")] * 3 + [("pool-b", "open")]


class TestCommand:
    def test_stored_and_static_endpoints(
        self, make_app: Callable[..., flask.Flask], database: dict[str, Any]
    ) -> None:
        """``flask thorn endpoints`` lists the endpoints of stored and static subscribers,
        open circuits first, with the subscriptions of each."""
        app = make_app({**database, "THORN_SUBSCRIBERS": {"a.*": "https://static.example.com/in"}})
        for event in ("a.one", "a.two"):
            store_subscription(app, "https://example.com/hook", event, endpoint="pool-down")
        store_subscription(app, "https://example.com/other")
        open_circuit(app, "pool-down")
        result = app.test_cli_runner().invoke(args=["thorn", "endpoints"])
        assert result.exit_code == 0, result.output
        lines = [line.split() for line in result.output.splitlines()]
        assert lines[0][:2] == ["ENDPOINT", "STATE"]
        assert lines[1][:3] == ["pool-down", "open", "100%"]
        assert lines[1][-1] == "2"
        assert sorted(line[0] for line in lines[2:]) == [
            "https://example.com:443",
            "https://static.example.com:443",
        ]

    def test_json_for_named_endpoints(self, app: flask.Flask) -> None:
        """``--json`` with a URL reports that URL's origin only."""
        result = app.test_cli_runner().invoke(
            args=["thorn", "endpoints", "--json", "https://Example.com/x?y=1"]
        )
        assert result.exit_code == 0, result.output
        (report,) = json.loads(result.output)
        assert report["endpoint"] == "https://example.com:443"
        assert report["state"] == "closed"
        assert report["subscriptions"] == 0
