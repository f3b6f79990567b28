"""The event catalog in Flask: THORN_EVENT_TYPES in the config, SQLAlchemy model schemas,
payloads judged at send, and the blueprint's catalog routes; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import flask
import pytest

from thorn_core import Event
from thorn_core.exceptions import PayloadValidationError
from thorn_core.receiver import WebhookReceiver
from thorn_flask import Thorn, create_blueprint, get_state
from thorn_flask.catalog import model_schema

from .app import Article, db

ORDER = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "amount": {"type": "number", "minimum": 0}},
    "required": ["id", "amount"],
}
TYPES = [
    {"name": "order.created", "schema": ORDER, "examples": [{"id": 1, "amount": 3}]},
    {"name": "article.archived", "schema": "tests.flask.app:Article", "version": "2"},
]


@pytest.fixture
def catalog_app(make_app: Callable[..., flask.Flask], database: dict[str, Any]) -> flask.Flask:
    """An app declaring types in its config, in "raise" mode, with the API at ``/hooks``."""
    app = make_app({**database, "THORN_EVENT_TYPES": TYPES, "THORN_VALIDATE_PAYLOADS": "raise"})
    app.config["SERVER_NAME"] = None
    app.register_blueprint(create_blueprint(), url_prefix="/hooks")
    return app


def send(app: flask.Flask, name: str, data: Any) -> None:
    """Send an event inside ``app``'s context."""
    with app.app_context():
        Event(name).send(data)


class TestSchemas:
    """Schemas from SQLAlchemy models."""

    def test_model(self) -> None:
        """A mapped class's columns by key; nullable ones allow null; lengths kept."""
        schema = model_schema(Article)

        props = schema["properties"]
        assert props["title"] == {"type": "string", "maxLength": 200}
        assert props["author_id"] == {"type": ["integer", "null"]}
        assert schema["required"] == ["id", "title", "state", "author_id"]

    def test_declared_by_path(self, catalog_app: flask.Flask) -> None:
        """A config entry names the model by path; its schema is derived."""
        kind = get_state(catalog_app).core.catalog.get("article.archived")

        assert kind.version == "2"
        assert kind.schema == model_schema(Article)


class TestValidation:
    """Payloads judged at send, per app."""

    def test_raise(
        self,
        catalog_app: flask.Flask,
        subscribe: Callable[..., Any],
        receiver: WebhookReceiver,
    ) -> None:
        """ "raise": PayloadValidationError, nothing delivered; a good payload is delivered."""
        subscribe(receiver.url("/orders"), event="order.*")

        with pytest.raises(PayloadValidationError) as caught:
            send(catalog_app, "order.created", {"id": 1, "amount": -5})
        assert (caught.value.pointer, caught.value.rule) == ("/amount", "minimum")

        send(catalog_app, "order.created", {"id": 2, "amount": 5})
        assert [w.json()["id"] for w in receiver.wait_for(1)] == [2]

    def test_modes_per_app(
        self,
        make_app: Callable[..., flask.Flask],
        catalog_app: flask.Flask,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Apps in one process keep their own mode: "warn" logs and sends, "off" is silent,
        "raise" raises."""
        warn = make_app({"THORN_EVENT_TYPES": TYPES, "THORN_VALIDATE_PAYLOADS": "warn"})
        off = make_app({"THORN_EVENT_TYPES": TYPES, "THORN_VALIDATE_PAYLOADS": "off"})
        bad = {"id": "x", "amount": 1}

        send(warn, "order.created", bad)
        send(off, "order.created", bad)

        assert caplog.text.count("breaks its schema at /id (type)") == 1
        with pytest.raises(PayloadValidationError):
            send(catalog_app, "order.created", bad)

    def test_debug_default(self) -> None:
        """The app's debug flag is followed (the mode is "raise" under pytest anyway)."""
        app = flask.Flask("debugging")
        app.debug = True
        Thorn(app)
        assert get_state(app).core.debug is True
        assert get_state(app).core.validation_mode == "raise"

    def test_model_events_keep_their_generated_type(
        self,
        catalog_app: flask.Flask,
        subscribe: Callable[..., Any],
        receiver: WebhookReceiver,
    ) -> None:
        """An article saved under "raise" sends a message keeping its generated type."""
        subscribe(receiver.url("/articles"), event="article.created")
        catalog_app.config["SERVER_NAME"] = "example.test"  # the ref URL is built outside requests

        with catalog_app.app_context():
            kind = get_state(catalog_app).core.catalog.get("article.created")
            assert kind.schema["properties"]["data"]["properties"]["title"]["maxLength"] == 200
            db.session.add(Article(title="Hello"))
            db.session.commit()

        assert receiver.wait_for(1)[0].json()["data"]["title"] == "Hello"


class TestRoutes:
    """``/event-types/``, ``/event-types/<name>`` and ``/asyncapi.json``."""

    def test_list(self, catalog_app: flask.Flask) -> None:
        """Every type with its schema."""
        answer = catalog_app.test_client().get("/hooks/event-types/", headers={"X-User": "ada"})

        assert answer.status_code == 200
        by_name = {t["name"]: t for t in answer.json}
        assert by_name["order.created"]["schema"] == ORDER
        assert by_name["order.created"]["examples"] == [{"id": 1, "amount": 3}]

    def test_detail(self, catalog_app: flask.Flask) -> None:
        """One type with its versions; an unknown one is 404 naming the known ones."""
        client = catalog_app.test_client()
        found = client.get("/hooks/event-types/article.archived", headers={"X-User": "ada"})
        assert found.status_code == 200
        assert found.json["versions"] == ["2"]

        missing = client.get("/hooks/event-types/order.lost", headers={"X-User": "ada"})
        assert missing.status_code == 404
        assert "order.created" in missing.json["detail"]

    def test_asyncapi(self, catalog_app: flask.Flask) -> None:
        """The AsyncAPI document of the app's catalog."""
        answer = catalog_app.test_client().get("/hooks/asyncapi.json", headers={"X-User": "ada"})

        assert answer.status_code == 200
        assert answer.json["asyncapi"] == "3.0.0"
        assert "order.created.v1" in answer.json["components"]["messages"]

    def test_needs_a_user(self, catalog_app: flask.Flask) -> None:
        """Anonymous requests get 401, as on the rest of the API."""
        client = catalog_app.test_client()

        assert client.get("/hooks/event-types/").status_code == 401
        assert client.get("/hooks/asyncapi.json").status_code == 401


class TestCommand:
    """``flask thorn catalog``."""

    def test_markdown(self, catalog_app: flask.Flask) -> None:
        """Writes the app's catalog as a Markdown page."""
        result = catalog_app.test_cli_runner().invoke(
            args=["thorn", "catalog", "--format", "markdown"]
        )

        assert result.exit_code == 0, result.output
        assert result.output.startswith("# Event catalog\n")
        assert "## order.created v1" in result.output

    def test_asyncapi(self, catalog_app: flask.Flask) -> None:
        """``--format asyncapi`` writes the AsyncAPI document."""
        result = catalog_app.test_cli_runner().invoke(
            args=["thorn", "catalog", "--format", "asyncapi"]
        )

        assert result.exit_code == 0, result.output
        assert "order.created.v1" in json.loads(result.output)["components"]["messages"]
