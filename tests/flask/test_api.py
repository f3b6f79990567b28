"""The subscription API blueprint: JSON CRUD, validation messages, users kept apart."""

from __future__ import annotations

from typing import Any

import flask
import pytest
from flask.testing import FlaskClient

from thorn_core.subscriptions import check_subscription
from thorn_flask import create_blueprint, get_state


@pytest.fixture
def client(app: flask.Flask) -> FlaskClient:
    """A test client of ``app`` with the API at ``/hooks``."""
    app.config["SERVER_NAME"] = None
    app.register_blueprint(create_blueprint(), url_prefix="/hooks")
    return app.test_client()


def as_user(user: str) -> dict[str, str]:
    """Headers naming the user (the tests' current_user reads X-User)."""
    return {"X-User": user}


def create(client: FlaskClient, user: str, **fields: Any) -> Any:
    """Create a subscription as ``user``; returns the JSON answer."""
    body = {"event": "article.*", "url": "http://127.0.0.1:8000/hooks", **fields}
    response = client.post("/hooks/", json=body, headers=as_user(user))
    assert response.status_code == 201, response.json
    return response.json


class TestCrud:
    """List, create, retrieve, update and delete one's own subscriptions."""

    def test_create_shows_the_secret_once(self, client: FlaskClient) -> None:
        """Creation answers the secret; later reads never do."""
        created = create(client, "ada")
        assert created["hmac_secret"].startswith("whsec_")
        assert created["user"] == "ada"
        assert created["subscription"] == f"http://localhost/hooks/{created['id']}"
        fetched = client.get(f"/hooks/{created['id']}", headers=as_user("ada")).json
        assert "hmac_secret" not in fetched
        assert fetched["event"] == "article.*"

    def test_list_update_delete(self, client: FlaskClient) -> None:
        """A user lists, changes and deletes a subscription."""
        created = create(client, "ada")
        url = f"/hooks/{created['id']}"
        assert [s["id"] for s in client.get("/hooks/", headers=as_user("ada")).json] == [
            created["id"]
        ]
        patched = client.patch(url, json={"active": False}, headers=as_user("ada"))
        assert patched.status_code == 200
        assert patched.json["active"] is False
        put = client.put(url, json={"event": "user.*"}, headers=as_user("ada"))
        assert put.status_code == 400
        assert put.json == {"url": ["This field is required."]}
        assert client.delete(url, headers=as_user("ada")).status_code == 204
        assert client.get(url, headers=as_user("ada")).status_code == 404

    def test_anonymous_is_refused(self, client: FlaskClient) -> None:
        """Without a user the API answers 401."""
        assert client.get("/hooks/").status_code == 401

    def test_flask_login_style_user(self, app: flask.Flask, client: FlaskClient) -> None:
        """A current_user object like Flask-Login's is identified by its id."""

        class User:
            is_authenticated = True

            def __init__(self, id: int) -> None:
                self.id = id

        get_state(app).current_user = lambda: User(42)
        response = client.post("/hooks/", json={"event": "*", "url": "http://127.0.0.1:8000/"})
        assert response.json["user"] == "42"


class TestValidation:
    """Invalid input gets 400 with the core's messages by field."""

    def test_messages_are_the_cores(self, app: flask.Flask, client: FlaskClient) -> None:
        """A bad pattern, an internal URL and an unknown digest are refused field by field."""
        body = {
            "event": "user.*.created",
            "url": "http://10.0.0.1/hook",
            "hmac_digest": "md5",
            "content_type": "text/csv",
        }
        response = client.post("/hooks/", json=body, headers=as_user("ada"))
        assert response.status_code == 400
        assert response.json == check_subscription(get_state(app).core, body)
        assert set(response.json) == {"event", "url", "hmac_digest", "content_type"}

    def test_missing_fields_and_wrong_types(self, client: FlaskClient) -> None:
        """Required fields are named; wrong types are refused before any check."""
        response = client.post("/hooks/", json={"active": "yes"}, headers=as_user("ada"))
        assert response.json == {
            "event": ["This field is required."],
            "url": ["This field is required."],
            "active": ["Must be a valid boolean."],
        }

    def test_body_must_be_an_object(self, client: FlaskClient) -> None:
        """A JSON list is not a subscription."""
        response = client.post("/hooks/", json=[], headers=as_user("ada"))
        assert response.status_code == 400


class TestIsolation:
    """Users only ever see their own subscriptions."""

    def test_users_cannot_reach_each_others(self, client: FlaskClient) -> None:
        """Bob gets 404 for Ada's subscription on every method, and lists only his own."""
        ada = create(client, "ada")
        bob = create(client, "bob")
        url = f"/hooks/{ada['id']}"
        assert client.get(url, headers=as_user("bob")).status_code == 404
        assert client.patch(url, json={"active": False}, headers=as_user("bob")).status_code == 404
        assert client.delete(url, headers=as_user("bob")).status_code == 404
        listed = client.get("/hooks/", headers=as_user("bob")).json
        assert [s["id"] for s in listed] == [bob["id"]]
        still = client.get(url, headers=as_user("ada")).json
        assert still["active"] is True
