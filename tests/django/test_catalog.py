"""The event catalog in Django: THORN_EVENT_TYPES, DRF serializer and model schemas, payloads
judged at send, and the ``event-types/`` and ``asyncapi.json`` endpoints."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework import serializers
from rest_framework.test import APIClient

from thorn_core import Event
from thorn_core.exceptions import PayloadValidationError
from thorn_core.receiver import WebhookReceiver
from thorn_django import get_app
from thorn_django.catalog import model_schema, serializer_schema

from .testapp.models import Article

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("loopback")]


class LineSerializer(serializers.Serializer):
    """One line of an order."""

    sku = serializers.CharField(max_length=20)
    quantity = serializers.IntegerField(min_value=1)


class OrderSerializer(serializers.Serializer):
    """An order as its webhook carries it."""

    id = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=10, decimal_places=2)
    status = serializers.ChoiceField(choices=["new", "paid"])
    placed = serializers.DateTimeField()
    note = serializers.CharField(allow_null=True)
    lines = LineSerializer(many=True)
    token = serializers.CharField(write_only=True)


ORDER_TYPE = {
    "name": "order.created",
    "schema": "tests.django.test_catalog:OrderSerializer",
    "description": "An order was placed.",
}


def order(**changes: Any) -> dict[str, Any]:
    """A valid order payload, as ``OrderSerializer(...).data`` renders one."""
    data = {
        "id": 1,
        "amount": "12.50",
        "status": "new",
        "placed": "2026-01-01T00:00:00Z",
        "note": None,
        "lines": [{"sku": "A-1", "quantity": 2}],
    }
    return {**data, **changes}


@pytest.fixture
def declared(settings: Any) -> Any:
    """``order.created`` declared in the settings with its DRF serializer; raise mode."""
    settings.THORN_EVENT_TYPES = [ORDER_TYPE]
    settings.THORN_VALIDATE_PAYLOADS = "raise"
    return get_app()


@pytest.fixture
def api(make_user: Callable[[str], Any]) -> APIClient:
    """An API client logged in as a user."""
    client = APIClient()
    client.force_authenticate(make_user("alice"))
    return client


class TestSchemas:
    """Schemas derived from serializers and models."""

    def test_serializer(self) -> None:
        """A serializer's readable fields, all required, nothing else; nested and null kept."""
        schema = serializer_schema(OrderSerializer)

        assert schema["required"] == ["id", "amount", "status", "placed", "note", "lines"]
        assert schema["additionalProperties"] is False
        assert schema["description"] == "An order as its webhook carries it."
        props = schema["properties"]
        assert props["status"] == {"enum": ["new", "paid"]}
        assert props["note"] == {"type": ["string", "null"]}
        assert props["lines"]["items"]["properties"]["quantity"] == {
            "type": "integer",
            "minimum": 1,
        }
        assert "token" not in props

    def test_model(self) -> None:
        """A model's concrete fields by attribute name; a nullable foreign key as its id."""
        schema = model_schema(Article)

        props = schema["properties"]
        assert props["title"] == {"type": "string", "maxLength": 200}
        assert props["uuid"] == {"type": "string", "format": "uuid"}
        assert props["author_id"] == {"type": ["integer", "null"]}

    def test_serializer_output_keeps_its_schema(self, declared: Any) -> None:
        """What the serializer renders is valid against the type it gave."""
        rendered = OrderSerializer(order(token="secret")).data

        declared.catalog.check("order.created", dict(rendered))


class TestValidation:
    """Payloads judged at send, in each mode."""

    def test_declared_from_settings(self, declared: Any) -> None:
        """THORN_EVENT_TYPES declares the type, its schema from the serializer's path."""
        kind = declared.catalog.get("order.created")

        assert kind.description == "An order was placed."
        assert kind.schema == serializer_schema(OrderSerializer)

    def test_raise(
        self, declared: Any, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """ "raise": a bad payload raises naming the pointer and rule, the receiver gets
        nothing; a good one is delivered."""
        subscribe("order.*", receiver.url("/orders"))
        event = Event("order.created")

        with pytest.raises(PayloadValidationError) as caught:
            event.send(order(lines=[{"sku": "A-1", "quantity": 0}]))
        assert (caught.value.pointer, caught.value.rule) == ("/lines/0/quantity", "minimum")

        event.send(order())
        (webhook,) = receiver.wait_for(1)
        assert webhook.json()["id"] == 1

    def test_warn(
        self,
        declared: Any,
        settings: Any,
        subscribe: Callable[..., Any],
        receiver: WebhookReceiver,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """ "warn": logged, and sent."""
        settings.THORN_VALIDATE_PAYLOADS = "warn"
        subscribe("order.*", receiver.url("/orders"))

        Event("order.created").send(order(status="lost"))

        assert "/status (enum)" in caplog.text
        assert receiver.wait_for(1)[0].json()["status"] == "lost"

    def test_off(
        self, declared: Any, settings: Any, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """ "off": not judged."""
        settings.THORN_VALIDATE_PAYLOADS = "off"
        subscribe("order.*", receiver.url("/orders"))

        Event("order.created").send({"anything": True})

        assert receiver.wait_for(1)[0].json() == {"anything": True}

    def test_debug_default(self, settings: Any) -> None:
        """Unset, the mode follows DEBUG outside pytest; under the plugin it is "raise"."""
        settings.DEBUG = True
        assert get_app().debug is True
        settings.DEBUG = False
        assert get_app().debug is False
        assert get_app().validation_mode == "raise"

    def test_settings_change_replaces_the_types(self, declared: Any, settings: Any) -> None:
        """Changed THORN_EVENT_TYPES replace the earlier ones (override_settings)."""
        settings.THORN_EVENT_TYPES = [{**ORDER_TYPE, "schema": {"type": "object"}}]

        assert get_app().catalog.get("order.created").schema == {"type": "object"}

    def test_bad_schema_is_a_configuration_error(self, settings: Any) -> None:
        """A schema that is not JSON Schema makes sends raise it, and the checks report it."""
        from django.core import checks

        settings.THORN_EVENT_TYPES = [{"name": "order.created", "schema": {"type": "nope"}}]

        with pytest.raises(Exception, match="not valid JSON Schema"):
            Event("order.created").send({})
        messages = [m.msg for m in checks.run_checks(tags=["thorn"]) if "JSON Schema" in m.msg]
        assert messages


class TestModelEvents:
    """The test app's model events in the catalog, with generated schemas."""

    def test_generated(self) -> None:
        """``article.created`` is the message with ``data`` from the model's fields, loosely."""
        kind = get_app().catalog.get("article.created")

        data = kind.schema["properties"]["data"]
        assert data["properties"]["state"] == {"type": "string", "maxLength": 20}
        assert "required" not in data
        assert kind.description == "A change of Article."

    def test_sent_payloads_keep_it(
        self, settings: Any, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """A save sends a message that keeps its generated type, under "raise"."""
        settings.THORN_VALIDATE_PAYLOADS = "raise"
        subscribe("article.*", receiver.url("/articles"))

        Article.objects.create(title="Hello")

        assert receiver.wait_for(1)[0].json()["data"]["title"] == "Hello"


class TestEndpoints:
    """``event-types/`` and ``asyncapi.json``."""

    def test_list(self, declared: Any, api: APIClient) -> None:
        """The list has every type with its schema, the model events' too."""
        answer = api.get("/hooks/event-types/", format="json")

        assert answer.status_code == 200
        names = [t["name"] for t in answer.json()]
        assert "order.created" in names
        assert "article.created" in names
        (found,) = [t for t in answer.json() if t["name"] == "order.created"]
        assert found["schema"]["required"][0] == "id"

    def test_detail(self, declared: Any, api: APIClient) -> None:
        """One type by name, with its versions; an unknown one is 404 listing the known."""
        answer = api.get("/hooks/event-types/order.created/", format="json")
        assert answer.status_code == 200
        assert answer.json()["versions"] == ["1"]

        missing = api.get("/hooks/event-types/order.lost/", format="json")
        assert missing.status_code == 404
        assert "order.created" in missing.json()["detail"]
        assert api.get("/hooks/event-types/order.created/?version=9").status_code == 404

    def test_browsable(self, declared: Any, api: APIClient) -> None:
        """A browser gets the browsable API page."""
        answer = api.get("/hooks/event-types/", HTTP_ACCEPT="text/html")

        assert answer.status_code == 200
        assert "text/html" in answer["Content-Type"]
        assert "order.created" in answer.content.decode()

    def test_read_only(self, declared: Any, api: APIClient) -> None:
        """Writes are refused."""
        assert api.post("/hooks/event-types/", {}, format="json").status_code == 405

    def test_asyncapi(self, declared: Any, api: APIClient) -> None:
        """The AsyncAPI document of the catalog, as JSON."""
        answer = api.get("/hooks/asyncapi.json")

        assert answer.status_code == 200
        document = answer.json()
        assert document["asyncapi"] == "3.0.0"
        assert "order.created.v1" in document["components"]["messages"]

    def test_needs_the_api_permissions(self, declared: Any) -> None:
        """Without a login the catalog is refused, as the rest of the API."""
        anonymous = APIClient()

        assert anonymous.get("/hooks/event-types/").status_code in (401, 403)
        assert anonymous.get("/hooks/asyncapi.json").status_code in (401, 403)


class TestCommand:
    """``manage.py thorn_catalog``."""

    def test_json(self, declared: Any) -> None:
        """Writes the project's types as JSON, the model events' too."""
        out = io.StringIO()
        call_command("thorn_catalog", stdout=out)

        names = {t["name"] for t in json.loads(out.getvalue())["event_types"]}
        assert {"order.created", "article.created"} <= names

    def test_asyncapi_to_a_file(self, declared: Any, tmp_path: Any) -> None:
        """``--format asyncapi -o FILE`` writes the AsyncAPI document."""
        target = tmp_path / "asyncapi.json"
        call_command("thorn_catalog", "--format", "asyncapi", "-o", str(target))

        assert json.loads(target.read_text())["asyncapi"] == "3.0.0"

    def test_unknown_format(self, declared: Any) -> None:
        """An unknown format is refused with the known ones."""
        with pytest.raises(CommandError, match="json"):
            call_command("thorn_catalog", "--format", "yaml")
