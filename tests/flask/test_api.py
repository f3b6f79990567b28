"""The subscription API blueprint: JSON CRUD, validation messages, users kept apart, 1.x
clients served, URLs masked, bodies capped; on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import flask
import pytest
from flask.testing import FlaskClient

from thorn_core import Event
from thorn_core.receiver import WebhookReceiver
from thorn_core.subscriptions import MAX_BODY_SIZE, check_subscription
from thorn_flask import DeliveryAttempt, create_blueprint, get_state
from thorn_flask.log import REACTIVATED

from .app import Subscription, db, store_subscription

HOOK = "http://127.0.0.1:8000/hooks"


@pytest.fixture
def client(app: flask.Flask) -> FlaskClient:
    """A test client of ``app`` with the API at ``/hooks``."""
    return with_api(app)


def with_api(app: flask.Flask) -> FlaskClient:
    """Register the API at ``/hooks`` on ``app``; a test client of it."""
    app.config["SERVER_NAME"] = None
    app.register_blueprint(create_blueprint(), url_prefix="/hooks")
    return app.test_client()


def as_user(user: str) -> dict[str, str]:
    """Headers naming the user (the tests' current_user reads X-User)."""
    return {"X-User": user}


def create(client: FlaskClient, user: str, **fields: Any) -> Any:
    """Create a subscription as ``user``; returns the JSON answer."""
    body = {"event": "article.*", "url": HOOK, **fields}
    response = client.post("/hooks/", json=body, headers=as_user(user))
    assert response.status_code == 201, response.json
    return response.json


def stored(app: flask.Flask, key: str) -> Subscription:
    """The stored row of subscription ``key`` (its uuid), as the database holds it now."""
    with app.app_context():
        row = db.session.scalars(db.select(Subscription)).all()
        found = [r for r in row if str(r.uuid) == key]
        assert len(found) == 1
        return found[0]


class TestCrud:
    """List, create, retrieve, update and delete one's own subscriptions."""

    def test_create_shows_the_secret_once(self, client: FlaskClient) -> None:
        """Creation answers the secret; later reads never do."""
        created = create(client, "ada")
        assert created["hmac_secret"].startswith("whsec_")
        assert created["user"] == "ada"
        fetched = client.get(f"/hooks/{created['id']}", headers=as_user("ada")).json
        assert "hmac_secret" not in fetched
        assert fetched["event"] == "article.*"

    def test_the_answer_names_the_resource(self, client: FlaskClient) -> None:
        """201's ``Location`` is the new subscription's API URL, never the webhook's URL."""
        response = client.post(
            "/hooks/", json={"event": "a.*", "url": HOOK}, headers=as_user("ada")
        )
        location = response.headers["Location"]
        assert location == f"http://localhost/hooks/{response.json['uuid']}"
        assert client.get(location, headers=as_user("ada")).json["uuid"] == response.json["uuid"]

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


class TestThorn1Clients:
    """The answer has the fields a Thorn 1.x client reads; a chosen secret is honoured."""

    def test_the_answer_carries_the_1x_fields(self, app: flask.Flask, client: FlaskClient) -> None:
        """``id`` is the uuid, ``subscription`` the absolute resource URL, ``user`` the owner's
        id, alongside the fields the Django API answers."""
        created = create(client, "ada")
        body = client.get(f"/hooks/{created['id']}", headers=as_user("ada")).json
        row = stored(app, created["uuid"])
        assert body == {
            "uuid": str(row.uuid),
            "id": str(row.uuid),
            "subscription": f"http://localhost/hooks/{row.uuid}",
            "event": "article.*",
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
            "user": "ada",
            "created_at": body["created_at"],
            "updated_at": body["updated_at"],
        }

    def test_a_chosen_secret_is_kept(self, app: flask.Flask, client: FlaskClient) -> None:
        """A client that sends its own ``hmac_secret`` gets it stored, not replaced."""
        created = create(client, "ada", hmac_secret="my-own-secret-of-1.x")
        assert created["hmac_secret"] == "my-own-secret-of-1.x"
        assert stored(app, created["uuid"]).hmac_secret == "my-own-secret-of-1.x"

    def test_an_unusable_secret_is_refused(self, app: flask.Flask, client: FlaskClient) -> None:
        """A secret too short or with spaces is a 400 under ``hmac_secret``; nothing is stored."""
        for secret in ("short", "a secret with spaces"):
            response = client.post(
                "/hooks/",
                json={"event": "a.*", "url": HOOK, "hmac_secret": secret},
                headers=as_user("ada"),
            )
            assert response.status_code == 400
            assert list(response.json) == ["hmac_secret"]
        assert client.get("/hooks/", headers=as_user("ada")).json == []

    def test_an_update_may_set_the_secret(self, app: flask.Flask, client: FlaskClient) -> None:
        """``PATCH`` with a new secret stores it and shows it in that one answer."""
        created = create(client, "ada")
        url = f"/hooks/{created['id']}"
        patched = client.patch(
            url, json={"hmac_secret": "rotated-secret-42"}, headers=as_user("ada")
        )
        assert patched.json["hmac_secret"] == "rotated-secret-42"
        assert stored(app, created["uuid"]).hmac_secret == "rotated-secret-42"
        assert "hmac_secret" not in client.patch(url, json={}, headers=as_user("ada")).json


class TestMaskedUrls:
    """Passwords in subscriber URLs never leave the API."""

    def test_passwords_are_masked_in_every_answer(
        self, app: flask.Flask, client: FlaskClient
    ) -> None:
        """The creation, the list and the detail show ``user:***@``; the row keeps the password."""
        secret_url = "http://hook-user:hunter2@127.0.0.1:8000/hook"
        created = create(client, "ada", url=secret_url)
        masked = "http://hook-user:***@127.0.0.1:8000/hook"
        assert created["url"] == masked
        assert client.get("/hooks/", headers=as_user("ada")).json[0]["url"] == masked
        assert client.get(f"/hooks/{created['id']}", headers=as_user("ada")).json["url"] == masked
        assert stored(app, created["uuid"]).url == secret_url

    def test_writing_back_the_masked_url_keeps_the_password(
        self, app: flask.Flask, client: FlaskClient
    ) -> None:
        """A client that reads, edits and ``PUT``s a subscription does not lose the password."""
        created = create(client, "ada", url="http://u:hunter2@127.0.0.1:8000/hook")
        url = f"/hooks/{created['id']}"
        shown = client.get(url, headers=as_user("ada")).json
        response = client.put(url, json={**shown, "event": "b.*"}, headers=as_user("ada"))
        assert response.status_code == 200, response.json
        row = stored(app, created["uuid"])
        assert (row.event, row.url) == ("b.*", "http://u:hunter2@127.0.0.1:8000/hook")

    def test_ping_and_redelivery_answers_are_masked(
        self,
        make_app: Callable[..., flask.Flask],
        database: dict[str, Any],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """A failing endpoint's messages name its URL without the password."""
        app = make_app({**database, "THORN_RETRY": False})
        client = with_api(app)
        down = make_receiver(lambda _request: (503, b"down"))
        url = down.url("/hook").replace("//", "//u:hunter2@")
        row = store_subscription(app, url, "a.*", user_id="ada")
        pinged = client.post(f"/hooks/{row.uuid}/ping/", headers=as_user("ada"))
        assert pinged.status_code == 200
        assert pinged.json["ok"] is False
        assert "u:***@127.0.0.1" in pinged.json["error"]
        with app.app_context():
            Event("a.created").send({"n": 1}, sender="ada")
        replayed = client.post(f"/hooks/{row.uuid}/redeliver/", json={}, headers=as_user("ada"))
        outcome = replayed.json
        assert outcome["failed"] == outcome["redelivered"] >= 1
        assert all("u:***@127.0.0.1" in d["error"] for d in outcome["deliveries"])
        listed = client.get(f"/hooks/{row.uuid}/deliveries/", headers=as_user("ada"))
        assert "u:***@127.0.0.1" in listed.json[0]["url"]
        for response in (pinged, replayed, listed):
            assert b"hunter2" not in response.data
        assert len(down.received) == 2 + outcome["redelivered"]


class TestActions:
    """Ping and re-enabling, on a real receiver."""

    def test_ping_delivers_a_signed_test_event(
        self, app: flask.Flask, client: FlaskClient, receiver: WebhookReceiver
    ) -> None:
        """``POST /<id>/ping/`` sends ``thorn.ping`` to that subscription now."""
        created = create(client, "ada", url=receiver.url("/hook"))
        response = client.post(f"/hooks/{created['id']}/ping/", headers=as_user("ada"))
        assert response.status_code == 200
        assert response.json["ok"] is True
        assert response.json["event"] == "thorn.ping"
        assert [w.event for w in receiver.received] == ["thorn.ping"]

    def test_patch_active_re_enables_a_subscription_disabled_by_failures(
        self,
        make_app: Callable[..., flask.Flask],
        database: dict[str, Any],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """``PATCH {"active": true}`` goes through the core as ``/enable/`` does: the row is
        switched on and the re-enabled mark starts the failure streak over."""
        config = {"THORN_RETRY": False, "THORN_FAILURE_LIMIT": 2, "THORN_FAILURE_WINDOW": 0}
        app = make_app({**database, **config})
        client = with_api(app)
        answers: list[int] = [503, 503, 503, 200]
        flaky = make_receiver(lambda _request: (answers.pop(0), b""))
        row = store_subscription(app, flaky.url("/hook"), "order.*", user_id="ada")

        def marks() -> int:
            with app.app_context():
                query = db.select(DeliveryAttempt).where(
                    DeliveryAttempt.subscriber_uuid == str(row.uuid),
                    DeliveryAttempt.event == REACTIVATED,
                )
                return len(db.session.scalars(query).all())

        with app.app_context():
            for number in range(2):
                Event("order.paid").send({"number": number}, sender="ada")
        assert stored(app, str(row.uuid)).active is False
        before = marks()
        response = client.patch(f"/hooks/{row.uuid}", json={"active": True}, headers=as_user("ada"))
        assert response.status_code == 200
        assert response.json["active"] is True
        assert marks() == before + 1
        with app.app_context():
            Event("order.paid").send({"number": 2}, sender="ada")  # one failure: under the limit
            Event("order.paid").send({"number": 3}, sender="ada")  # and a success
        assert stored(app, str(row.uuid)).active is True
        assert len(flaky.received) == 4
        unchanged = client.patch(
            f"/hooks/{row.uuid}", json={"active": True}, headers=as_user("ada")
        )
        assert unchanged.status_code == 200
        assert marks() == before + 1  # already on: nothing to re-enable


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

    @pytest.mark.parametrize(
        ("field", "value", "limit"),
        [
            ("event", "e" * 201, 200),
            ("url", HOOK + "/" + "p" * 2048, 2048),
            ("content_type", "a/" + "b" * 99, 100),
            ("hmac_digest", "sha256" + "x" * 11, 16),
            ("hmac_secret", "s" * 256, 255),
        ],
    )
    def test_values_longer_than_their_columns(
        self, client: FlaskClient, field: str, value: str, limit: int
    ) -> None:
        """Refused as the Django API refuses them, before SQLite stores them silently or
        PostgreSQL raises."""
        body = {"event": "a.*", "url": HOOK, field: value}
        response = client.post("/hooks/", json=body, headers=as_user("ada"))
        assert response.status_code == 400
        assert response.json == {field: [f"Ensure this field has no more than {limit} characters."]}
        assert client.get("/hooks/", headers=as_user("ada")).json == []

    def test_missing_fields_and_wrong_types(self, client: FlaskClient) -> None:
        """Required fields are named; wrong types are refused before any check."""
        response = client.post("/hooks/", json={"active": "yes"}, headers=as_user("ada"))
        assert response.json == {
            "event": ["This field is required."],
            "url": ["This field is required."],
            "active": ["Must be a valid boolean."],
        }


class TestBodies:
    """Bodies that are too large, not JSON or not an object get a JSON 4xx."""

    def test_a_body_over_the_limit_is_a_json_413(self, app: flask.Flask) -> None:
        """A body over 64 KiB is refused before it is read; the host app's routes keep theirs."""

        @app.post("/upload")
        def upload() -> str:
            return str(len(flask.request.get_data()))

        client = with_api(app)
        body = json.dumps({"event": "a.*", "url": HOOK, "pad": "x" * MAX_BODY_SIZE})
        response = client.post(
            "/hooks/", data=body, content_type="application/json", headers=as_user("ada")
        )
        assert response.status_code == 413
        assert response.json == {
            "detail": f"Request body too large: send at most {MAX_BODY_SIZE} bytes."
        }
        assert app.config["MAX_CONTENT_LENGTH"] is None
        assert client.post("/upload", data=body).text == str(len(body))

    def test_a_smaller_app_limit_applies(self, app: flask.Flask, client: FlaskClient) -> None:
        """``MAX_CONTENT_LENGTH`` below the core's cap is the limit."""
        app.config["MAX_CONTENT_LENGTH"] = 100
        response = client.post(
            "/hooks/", json={"event": "a.*", "url": HOOK, "pad": "x" * 100}, headers=as_user("ada")
        )
        assert response.status_code == 413
        assert "at most 100 bytes" in response.json["detail"]

    def test_a_body_without_length_is_capped_too(self, client: FlaskClient) -> None:
        """A streamed body (no Content-Length) is read up to the limit, then refused in JSON."""
        body = json.dumps({"event": "a.*", "url": HOOK, "pad": "x" * MAX_BODY_SIZE}).encode()
        response = client.post(
            "/hooks/",
            input_stream=io.BytesIO(body),
            content_type="application/json",
            headers=as_user("ada"),
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert response.status_code == 413
        assert "at most" in response.json["detail"]

    @pytest.mark.parametrize(
        ("body", "kind"), [("[]", "array"), ("null", "null"), ('"x"', "string"), ("7", "number")]
    )
    def test_the_body_must_be_an_object(self, client: FlaskClient, body: str, kind: str) -> None:
        """Any other JSON value is refused as a whole."""
        response = client.post(
            "/hooks/", data=body, content_type="application/json", headers=as_user("ada")
        )
        assert response.status_code == 400
        assert response.json == {
            "non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]
        }

    def test_malformed_json_and_other_media_types(self, client: FlaskClient) -> None:
        """A body that is not JSON names the parse error; a form is an unsupported type."""
        broken = client.post(
            "/hooks/", data="{not json", content_type="application/json", headers=as_user("ada")
        )
        assert broken.status_code == 400
        assert broken.json["detail"].startswith("JSON parse error - ")
        form = client.post("/hooks/", data={"event": "a.*"}, headers=as_user("ada"))
        assert form.status_code == 415
        assert form.json == {
            "detail": 'Unsupported media type "application/x-www-form-urlencoded" in request.'
        }


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
        for name in ("enable", "ping", "redeliver"):
            response = client.post(f"{url}/{name}/", headers=as_user("bob"))
            assert response.json == {"detail": "Not found."}
        listed = client.get("/hooks/", headers=as_user("bob")).json
        assert [s["id"] for s in listed] == [bob["id"]]
        still = client.get(url, headers=as_user("ada")).json
        assert still["active"] is True
