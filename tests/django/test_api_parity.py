"""Both subscription APIs answer alike: every door of the Django REST Framework API and of
the Flask blueprint, walked with the same bad input, gets the same JSON 4xx answer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_sqlalchemy")

import flask
from flask.testing import FlaskClient
from rest_framework.test import APIClient

from thorn_core.subscriptions import MAX_BODY_SIZE, MAX_URL_LENGTH
from thorn_django.models import Subscriber
from thorn_flask import DeliveryAttempt, Thorn, create_blueprint, get_state

from ..flask.app import LOOPBACK, Subscription, db

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback")]

#: The subscription both APIs hold for alice, under the same uuid.
KEY = uuid.UUID("0c1f6a52-6d1e-4a55-8f3b-6e2a8f9b1d01")
#: A uuid nobody's subscription has.
UNKNOWN = uuid.UUID("9a9a9a9a-0000-4000-8000-000000000000")
GOOD = {"event": "a.*", "url": "http://127.0.0.1:9/hook"}
#: Bad values of every writable field: wrong JSON types, null, empty, too long, refused.
BAD_VALUES: dict[str, list[Any]] = {
    "event": [["a.*"], {"a": 1}, 5, None, True, "", "a.*.b", "e" * 201],
    "url": [
        5,
        ["http://127.0.0.1/"],
        None,
        "",
        "not a url",
        "http://10.0.0.1/",
        "ftp://127.0.0.1/",
        "http://127.0.0.1/" + "p" * MAX_URL_LENGTH,
    ],
    "content_type": [5, None, [], "text/csv", "a/" + "b" * 99],
    "hmac_digest": [[], None, "md5", "x" * 17],
    "hmac_secret": [5, None, "short", "has a space inside", "s" * 256, "whsec_!!!!!!!!!!!!!!!!"],
    "active": ["yes", 1, {}, None, []],
}


class Call(NamedTuple):
    """One request: method, route (``list``, ``detail`` or an action), body, content type."""

    method: str
    route: str
    body: Any = None
    content_type: str = "application/json"
    key: uuid.UUID | str = KEY
    query: str = ""


def _raw(body: Any) -> str | None:
    """The body as sent: a str as it is (maybe not JSON), anything else as JSON."""
    if body is None:
        return None
    return body if isinstance(body, str) else json.dumps(body)


def _field_calls() -> Iterator[Any]:
    for field, values in BAD_VALUES.items():
        for value in values:
            label = f"{field}={json.dumps(value)[:24]}"
            yield pytest.param(Call("POST", "list", {**GOOD, field: value}), id=f"create {label}")
            yield pytest.param(Call("PATCH", "detail", {field: value}), id=f"patch {label}")


BODIES = [
    pytest.param("{not json", id="not JSON"),
    pytest.param('{"event": NaN, "url": "x"}', id="NaN"),
    pytest.param("[]", id="array"),
    pytest.param("null", id="null"),
    pytest.param('"text"', id="string"),
    pytest.param("3", id="number"),
    pytest.param({}, id="empty object"),
    pytest.param(
        {"event": "a.*", "url": "http://127.0.0.1/", "pad": "x" * MAX_BODY_SIZE}, id="big"
    ),
]

CALLS = [
    *_field_calls(),
    *(pytest.param(Call("POST", "list", p.values[0]), id=f"create {p.id}") for p in BODIES),
    *(
        pytest.param(Call("PATCH", "detail", p.values[0]), id=f"patch {p.id}")
        for p in BODIES
        if p.values[0] != {}  # an empty PATCH changes nothing: 200
    ),
    *(pytest.param(Call("PUT", "detail", p.values[0]), id=f"put {p.id}") for p in BODIES),
    pytest.param(Call("PUT", "detail", {"event": "a.*"}), id="put without url"),
    pytest.param(Call("POST", "list", "event=a.*", "text/plain"), id="create text/plain"),
    pytest.param(Call("POST", "redeliver", "[]"), id="redeliver array"),
    pytest.param(Call("POST", "redeliver", "{not json"), id="redeliver not JSON"),
    pytest.param(Call("POST", "redeliver", {"since": 5}), id="redeliver since number"),
    pytest.param(Call("POST", "redeliver", {"since": []}), id="redeliver since array"),
    pytest.param(Call("POST", "redeliver", {"since": "yesterday"}), id="redeliver since word"),
    pytest.param(Call("GET", "deliveries", query="?limit=many"), id="deliveries limit"),
    *(
        pytest.param(Call(method, route, key=key), id=f"{route} {label}")
        for method, route in [
            ("GET", "detail"),
            ("DELETE", "detail"),
            ("POST", "enable"),
            ("POST", "ping"),
            ("POST", "redeliver"),
            ("GET", "deliveries"),
        ]
        for key, label in [(UNKNOWN, "unknown id"), ("not-a-uuid", "malformed id")]
    ),
    pytest.param(Call("POST", "delivery", key="no-such-delivery"), id="redeliver unknown delivery"),
]


@pytest.fixture
def django_api(make_user: Callable[[str], Any]) -> APIClient:
    """The Django API as alice, who owns the subscription :data:`KEY`."""
    alice = make_user("alice")
    Subscriber.objects.create(uuid=KEY, user=alice, **GOOD)
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def flask_api(tmp_path: Path) -> Iterator[FlaskClient]:
    """The Flask API (SQLite) as alice, who owns the subscription :data:`KEY`."""
    app = flask.Flask("parity")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'parity.db'}",
        THORN_RECIPIENT_VALIDATORS=LOOPBACK,
    )
    db.init_app(app)
    Thorn(app, db=db, model=Subscription, current_user=lambda: "alice")
    app.register_blueprint(create_blueprint(), url_prefix="/hooks")
    tables = [DeliveryAttempt.__table__]
    with app.app_context():
        db.create_all()
        DeliveryAttempt.metadata.create_all(db.engine, tables=tables)
        db.session.add(Subscription(uuid=KEY, user_id="alice", **GOOD))
        db.session.commit()
    yield app.test_client()
    with app.app_context():
        db.session.remove()
        db.drop_all()
        DeliveryAttempt.metadata.drop_all(db.engine, tables=tables)
        db.engine.dispose()
    get_state(app).core.close()


def django_path(call: Call) -> str:
    """The Django API's path of ``call``."""
    if call.route == "list":
        return "/hooks/"
    if call.route == "delivery":
        return f"/hooks/deliveries/{call.key}/redeliver/"
    suffix = "" if call.route == "detail" else f"{call.route}/"
    return f"/hooks/{call.key}/{suffix}{call.query}"


def flask_path(call: Call) -> str:
    """The Flask API's path of ``call`` (its detail route has no trailing slash)."""
    if call.route == "detail":
        return f"/hooks/{call.key}"
    return django_path(call)


class TestBothApisAnswerAlike:
    @pytest.mark.parametrize("call", CALLS)
    def test_the_same_bad_input_gets_the_same_answer(
        self, django_api: APIClient, flask_api: FlaskClient, call: Call
    ) -> None:
        """Same status (a 4xx), same JSON body, in the Django and the Flask API."""
        body = _raw(call.body)
        from_django = django_api.generic(
            call.method, django_path(call), body or "", content_type=call.content_type
        )
        from_flask = flask_api.open(
            flask_path(call),
            method=call.method,
            data=body,
            content_type=call.content_type if body is not None else None,
        )
        assert 400 <= from_django.status_code < 500
        assert from_django["Content-Type"] == "application/json"
        assert from_flask.mimetype == "application/json"
        assert (from_flask.status_code, from_flask.get_json()) == (
            from_django.status_code,
            from_django.json(),
        )

    def test_the_answers_have_the_same_fields(
        self, django_api: APIClient, flask_api: FlaskClient
    ) -> None:
        """A subscription reads with the same keys in both APIs (values differ by host)."""
        from_django = django_api.get(f"/hooks/{KEY}/").json()
        from_flask = flask_api.get(f"/hooks/{KEY}").get_json()
        assert sorted(from_django) == sorted(from_flask)
        same = ("uuid", "id", "event", "url", "content_type", "hmac_digest", "active")
        assert {k: from_django[k] for k in same} == {k: from_flask[k] for k in same}
