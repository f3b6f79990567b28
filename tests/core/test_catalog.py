"""The event catalog: declared types, derived schemas, and payloads judged at send."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import logging
import subprocess
import sys
import uuid

import attrs
import pytest

from thorn_core.catalog import Catalog, EventType, add_schema_deriver, remove_schema_deriver
from thorn_core.exceptions import (
    ImproperlyConfigured,
    InvalidEventName,
    InvalidEventType,
    InvalidPattern,
    PayloadValidationError,
)
from thorn_core.testing import WebhookRecorder

ORDER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "amount": {"type": "number", "minimum": 0},
        "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}},
    },
    "required": ["id", "amount"],
}


@pytest.fixture
def receiver():
    """A real receiver on 127.0.0.1 that records what it gets."""
    with WebhookRecorder() as recorder:
        yield recorder


def make(make_app, mode, receiver=None):
    """An app declaring ``order.created``, validating in ``mode``, subscribed by ``receiver``."""
    app = make_app({"THORN_VALIDATE_PAYLOADS": mode})
    app.event_type("order.created", schema=ORDER, examples=[{"id": 1, "amount": 5}])
    if receiver is not None:
        receiver.subscribe(app, "order.*")
    return app


class TestDeclaring:
    """``app.event_type`` and the ``Catalog`` registry."""

    def test_declared_types_are_listed(self, app):
        """Declared types come back by name, by version (newest by default) and by pattern."""
        app.event_type("order.created", schema=ORDER, description="A new order.")
        app.event_type("order.created", schema=ORDER, version="2")
        app.event_type("order.created", schema=ORDER, version="10")
        app.event_type("user.created", deprecated=True)

        catalog = app.catalog
        assert catalog.names() == ["order.created", "user.created"]
        assert catalog.versions("order.created") == ["1", "2", "10"]
        assert catalog.get("order.created").version == "10"
        assert catalog.get("order.created", "1").description == "A new order."
        assert catalog.get("order.shipped") is None
        assert [t.key for t in catalog.matching("order.*")] == [
            ("order.created", "1"),
            ("order.created", "2"),
            ("order.created", "10"),
        ]
        assert [t.name for t in catalog.matching("*.created")] == ["order.created"] * 3 + [
            "user.created"
        ]
        assert catalog.matching("invoice.*") == []
        assert "user.created" in catalog
        assert len(catalog) == 4

    def test_bad_pattern(self, app):
        """``matching`` refuses a malformed pattern with the pattern's own error."""
        with pytest.raises(InvalidPattern):
            app.catalog.matching("order.*.x")

    def test_duplicate_name_and_version(self, app):
        """Two different types with one name and version are an error; the same one is not."""
        app.event_type("order.created", schema=ORDER)
        app.event_type("order.created", schema=ORDER)

        with pytest.raises(InvalidEventType, match="declared twice"):
            app.event_type("order.created", schema={"type": "object"})

    def test_schema_that_is_not_json_schema(self, app):
        """A schema draft 2020-12 refuses is an error at declaration, naming where."""
        with pytest.raises(InvalidEventType, match=r"not valid JSON Schema .* at /properties/id"):
            app.event_type("order.created", schema={"properties": {"id": {"type": 12}}})

    def test_other_dialect(self, app):
        """A schema of another draft is refused: the catalog speaks 2020-12 only."""
        with pytest.raises(InvalidEventType, match="draft 2020-12"):
            app.event_type(
                "order.created", schema={"$schema": "http://json-schema.org/draft-07/schema#"}
            )

    def test_example_that_breaks_the_schema(self, app):
        """Examples are part of the contract: one that breaks the schema is an error."""
        with pytest.raises(InvalidEventType, match=r"example 1 .* at /amount \(minimum\)"):
            app.event_type(
                "order.created",
                schema=ORDER,
                examples=[{"id": 1, "amount": 2}, {"id": 2, "amount": -1}],
            )

    @pytest.mark.parametrize(
        ("options", "error", "match"),
        [
            ({"version": ""}, InvalidEventType, "version"),
            ({"version": 2}, InvalidEventType, "version"),
            ({"description": None}, InvalidEventType, "description"),
            ({"deprecated": "yes"}, InvalidEventType, "deprecated"),
            ({"examples": {"id": 1}}, InvalidEventType, "examples"),
            ({"schema": 42}, InvalidEventType, "schema must be"),
        ],
    )
    def test_bad_options(self, app, options, error, match):
        """Every option of the wrong kind is refused with a message naming it."""
        with pytest.raises(error, match=match):
            app.event_type("order.created", **options)

    def test_bad_name(self, app):
        """A malformed event name is the usual InvalidEventName."""
        with pytest.raises(InvalidEventName):
            app.event_type("order..created")

    def test_from_settings(self, make_app):
        """``THORN_EVENT_TYPES`` declares types; an unknown key or a bad entry fails at start-up."""
        app = make_app(
            {"THORN_EVENT_TYPES": [{"name": "order.created", "schema": ORDER, "version": "3"}]}
        )
        assert app.catalog.get("order.created").version == "3"

        with pytest.raises(InvalidEventType, match="unknown keys"):
            make_app({"THORN_EVENT_TYPES": [{"name": "order.created", "shape": ORDER}]})
        with pytest.raises(InvalidEventType, match="mappings with a 'name'"):
            make_app({"THORN_EVENT_TYPES": ["order.created"]})
        with pytest.raises(ImproperlyConfigured, match="THORN_EVENT_TYPES"):
            make_app({"THORN_EVENT_TYPES": "order.created"})

    def test_reconfigure_replaces_setting_types(self, make_app):
        """New settings replace the types the old ones declared; code-declared ones stay, and
        a refused entry changes nothing."""
        app = make_app({"THORN_EVENT_TYPES": [{"name": "a.b", "schema": {"type": "object"}}]})
        app.event_type("c.d")
        settings = {"THORN_RECIPIENT_VALIDATORS": app.settings.recipient_validators}

        app.configure({**settings, "THORN_EVENT_TYPES": [{"name": "a.b", "schema": {}}]})
        assert app.catalog.get("a.b").schema == {}
        assert app.catalog.names() == ["a.b", "c.d"]

        with pytest.raises(InvalidEventType):
            app.configure(
                {**settings, "THORN_EVENT_TYPES": [{"name": "c.d", "schema": {"type": "x"}}]}
            )
        assert app.catalog.get("a.b").schema == {}

    def test_to_dict(self):
        """A type's JSON form carries everything the contract publishes."""
        kind = EventType(name="a.b", schema={"type": "object"}, examples=[{}], description="x")
        assert kind.to_dict() == {
            "name": "a.b",
            "version": "1",
            "description": "x",
            "deprecated": False,
            "schema": {"type": "object"},
            "examples": [{}],
        }

    def test_clear(self):
        """A catalog forgets its types on ``clear``."""
        catalog = Catalog()
        catalog.declare("a.b")
        catalog.clear()
        assert catalog.types() == []
        assert not catalog


@dataclasses.dataclass
class Line:
    """One line of an order."""

    sku: str
    quantity: int = 1


@dataclasses.dataclass
class Order:
    """An order as its webhook carries it."""

    id: int
    total: decimal.Decimal
    placed: datetime.datetime
    customer: uuid.UUID | None
    lines: list[Line]
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


@attrs.define
class Refund:
    """A refund."""

    order: int
    reason: str = ""


class TestDerivedSchemas:
    """Schemas derived from dataclasses, attrs classes and adapters' derivers."""

    def test_dataclass(self, app):
        """A dataclass gives an object schema: a property per field, fields without defaults
        required, nested classes as nested objects, Python types as their JSON forms."""
        kind = app.event_type("order.created", schema=Order)

        assert kind.schema["required"] == ["id", "total", "placed", "customer", "lines"]
        assert kind.schema["additionalProperties"] is False
        assert kind.schema["description"] == "An order as its webhook carries it."
        props = kind.schema["properties"]
        assert props["placed"] == {"type": "string", "format": "date-time"}
        assert props["customer"] == {
            "anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]
        }
        assert props["lines"]["items"]["required"] == ["sku"]
        assert props["tags"] == {"type": "object", "additionalProperties": {"type": "string"}}

    def test_derived_schema_judges_python_payloads(self, make_app):
        """A payload of datetimes, Decimals and UUIDs keeps the derived schema (they are
        judged as the JSON they encode to); a missing field does not."""
        app = make_app({"THORN_VALIDATE_PAYLOADS": "raise", "THORN_DISPATCHER": "disabled"})
        app.event_type("order.created", schema=Order)
        event = app.event("order.created")
        good = {
            "id": 1,
            "total": decimal.Decimal("9.90"),
            "placed": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
            "customer": uuid.uuid4(),
            "lines": ({"sku": "A"},),
        }
        event.send(good)

        with pytest.raises(PayloadValidationError) as caught:
            event.send({**good, "lines": [{"quantity": 2}]})
        assert (caught.value.pointer, caught.value.rule) == ("/lines/0", "required")

    def test_attrs_class(self, app):
        """An attrs class gives the same kind of schema."""
        kind = app.event_type("order.refunded", schema=Refund)
        assert kind.schema["properties"] == {
            "order": {"type": "integer"},
            "reason": {"type": "string"},
        }
        assert kind.schema["required"] == ["order"]

    def test_adapter_deriver(self, app):
        """A deriver added by an adapter turns the classes it knows into schemas."""

        class Known:
            pass

        def deriver(source):
            return {"type": "object", "title": "known"} if source is Known else None

        add_schema_deriver(deriver)
        try:
            assert app.event_type("a.b", schema=Known).schema["title"] == "known"
        finally:
            remove_schema_deriver(deriver)
        with pytest.raises(InvalidEventType, match="schema must be"):
            app.event_type("a.c", schema=Known)


class TestValidationModes:
    """``THORN_VALIDATE_PAYLOADS``: raise, warn, off, and the default."""

    def test_raise_sends_nothing(self, make_app, receiver):
        """In "raise" mode a bad payload is PayloadValidationError naming the event, the
        pointer and the rule, and the receiver gets nothing; a good one is delivered."""
        app = make(make_app, "raise", receiver)
        event = app.event("order.created")

        with pytest.raises(PayloadValidationError) as caught:
            event.send({"id": 1, "amount": "ten"})
        error = caught.value
        assert (error.event, error.version, error.pointer, error.rule) == (
            "order.created",
            "1",
            "/amount",
            "type",
        )
        assert "'order.created'" in str(error)
        assert "/amount (type)" in str(error)

        event.send({"id": 2, "amount": 10})
        received = receiver.wait_for(1)
        assert [d.payload for d in received] == [{"id": 2, "amount": 10}]

    def test_raise_names_missing_property(self, make_app):
        """A missing property is reported at its object's pointer with the rule ``required``."""
        app = make(make_app, "raise")
        with pytest.raises(PayloadValidationError, match=r"at / \(required\).*'amount'"):
            app.event("order.created").send({"id": 1})

    def test_warn_logs_and_sends(self, make_app, receiver, caplog):
        """In "warn" mode the problem is logged and the payload still goes out."""
        app = make(make_app, "warn", receiver)

        with caplog.at_level(logging.WARNING, logger="thorn_core.app"):
            app.event("order.created").send({"id": "one", "amount": 1})

        assert "breaks its schema at /id (type)" in caplog.text
        assert receiver.wait_for(1)[0].payload == {"id": "one", "amount": 1}

    def test_off_sends_unchecked(self, make_app, receiver, caplog):
        """In "off" mode nothing is judged or logged."""
        app = make(make_app, "off", receiver)

        with caplog.at_level(logging.WARNING):
            app.event("order.created").send({"id": "one"})

        assert "schema" not in caplog.text
        assert receiver.wait_for(1)[0].payload == {"id": "one"}

    def test_undeclared_events_pass(self, make_app):
        """An event with no declared type is not judged."""
        app = make(make_app, "raise")
        app.event("order.shipped").send("anything")

    def test_version_pin(self, make_app):
        """An event pinned to a version is judged against that version, else the newest."""
        app = make(make_app, "raise")
        app.event_type("order.created", version="2", schema={"type": "object", "required": ["ref"]})

        app.event("order.created", version="1").send({"id": 1, "amount": 1})
        with pytest.raises(PayloadValidationError, match=r"version 2"):
            app.event("order.created").send({"id": 1, "amount": 1})

    def test_default_mode(self, make_app):
        """Unset, the mode is "raise" under the pytest plugin (as here) and in debug mode."""
        app = make_app()
        assert app.validation_mode == "raise"
        app.debug = True
        assert app.validation_mode == "raise"

    def test_default_mode_outside_pytest(self):
        """Outside pytest and debug mode the default is "warn"; debug makes it "raise"."""
        code = (
            "from thorn_core import Thorn; a = Thorn(set_as_current=False); "
            "m = a.validation_mode; a.debug = True; print(m, a.validation_mode)"
        )
        out = subprocess.run(  # noqa: S603 - this interpreter, a fixed snippet
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout.split()
        assert out == ["warn", "raise"]

    def test_bad_mode(self, make_app):
        """An unknown mode is refused at start-up."""
        with pytest.raises(ImproperlyConfigured, match="THORN_VALIDATE_PAYLOADS"):
            make_app({"THORN_VALIDATE_PAYLOADS": "strict"})

    def test_buffered_send_raises_at_send(self, make_app, receiver):
        """Inside ``buffer_events`` the bad payload raises at ``send()``, not at flush."""
        from thorn_core import buffer_events

        app = make(make_app, "raise", receiver)
        with buffer_events(app=app):
            with pytest.raises(PayloadValidationError):
                app.event("order.created").send({"id": 1})
            app.event("order.created").send({"id": 3, "amount": 3})
        assert [d.payload["id"] for d in receiver.wait_for(1)] == [3]


class TestHostilePayloads:
    """Huge and deeply nested payloads are judged within the send's limits."""

    def test_deeply_nested(self, make_app):
        """A payload nested past the interpreter's recursion limit is refused as too deep."""
        app = make_app({"THORN_VALIDATE_PAYLOADS": "raise", "THORN_DISPATCHER": "disabled"})
        app.event_type(
            "tree.grown",
            schema={"$defs": {}, "type": "object", "additionalProperties": {"$ref": "#"}},
        )
        payload: dict = {}
        node = payload
        for _ in range(sys.getrecursionlimit() + 100):
            node["a"] = {}
            node = node["a"]

        with pytest.raises(PayloadValidationError, match=r"\(depth\).*too deep"):
            app.event("tree.grown").send(payload)

    def test_huge_array(self, make_app):
        """A payload with 100,000 items is judged; the first bad item is named."""
        app = make_app({"THORN_VALIDATE_PAYLOADS": "raise", "THORN_DISPATCHER": "disabled"})
        app.event_type(
            "batch.done",
            schema={
                "type": "object",
                "properties": {"items": {"type": "array", "items": {"type": "integer"}}},
            },
        )
        items = list(range(100_000))
        app.event("batch.done").send({"items": items})
        items[99_999] = "x"

        with pytest.raises(PayloadValidationError) as caught:
            app.event("batch.done").send({"items": items})
        assert caught.value.pointer == "/items/99999"

    def test_long_message_is_shortened(self, make_app):
        """A huge offending value does not make a huge error message."""
        app = make_app({"THORN_VALIDATE_PAYLOADS": "raise", "THORN_DISPATCHER": "disabled"})
        app.event_type("a.b", schema={"type": "object", "properties": {"s": {"type": "integer"}}})
        with pytest.raises(PayloadValidationError) as caught:
            app.event("a.b").send({"s": "x" * 1_000_000})
        assert len(str(caught.value)) < 500


class TestFastPath:
    """The compiled fast path agrees with jsonschema on the 2020-12 semantics."""

    def test_keywords_only_2020_12_has(self, make_app):
        """``prefixItems`` (unknown to draft 7) is still enforced."""
        app = make_app({"THORN_VALIDATE_PAYLOADS": "raise", "THORN_DISPATCHER": "disabled"})
        app.event_type("a.b", schema={"type": "array", "prefixItems": [{"type": "integer"}]})
        app.event("a.b").send([1, "x"])
        with pytest.raises(PayloadValidationError, match=r"at /0 \(type\)"):
            app.event("a.b").send(["x"])

    def test_format_is_an_annotation(self, make_app):
        """``format`` is an annotation in 2020-12: a string that is no date still passes."""
        app = make_app({"THORN_VALIDATE_PAYLOADS": "raise", "THORN_DISPATCHER": "disabled"})
        app.event_type("a.b", schema={"type": "string", "format": "date-time"})
        app.event("a.b").send("not a date")

    def test_booleans_are_not_integers(self, make_app):
        """``True`` is no integer, in either path."""
        app = make_app({"THORN_VALIDATE_PAYLOADS": "raise", "THORN_DISPATCHER": "disabled"})
        app.event_type("a.b", schema={"type": "integer"})
        with pytest.raises(PayloadValidationError):
            app.event("a.b").send(True)


@dataclasses.dataclass
class Post:
    """A dataclass "model": its fields give the generated schema."""

    id: int
    title: str
    published: bool = False

    def webhook_payload(self):
        """What a post's webhooks carry."""
        return {"id": self.id, "title": self.title}


#: A ``data`` schema requiring an author, which the posts below never send.
AUTHORED = {"type": "object", "required": ["id", "title", "author"]}


class TestModelEvents:
    """Model events in the catalog: generated or declared schemas of the whole message."""

    @pytest.fixture
    def hook_app(self, make_app, receiver):
        """The current app, validating in "raise" mode, every event going to ``receiver``."""
        from thorn_core.binding import BlinkerBinding

        return make_app(
            {"THORN_SUBSCRIBERS": {"*": receiver.url()}, "THORN_VALIDATE_PAYLOADS": "raise"},
            binding=BlinkerBinding(),
            set_as_current=True,
        )

    @pytest.fixture
    def connected(self):
        """Disconnect the models a test decorates."""
        seen = []
        yield seen.append
        for model in seen:
            for event in model.webhooks.events.values():
                event.disconnect_model(model)

    def test_generated_schema(self, hook_app, connected, receiver):
        """Without a schema, the type is the message with ``data`` generated loosely from the
        model's fields: typed where present, none required, others allowed."""
        from thorn_core import ModelEvent, webhook_model
        from thorn_core.binding import created

        @webhook_model
        class GeneratedPost(Post):
            class webhooks:
                on_create = ModelEvent("post.created")

        connected(GeneratedPost)
        kind = hook_app.catalog.get("post.created")
        assert kind.description == "A change of GeneratedPost."
        assert kind.schema["required"] == ["event", "ref", "sender", "data"]
        data = kind.schema["properties"]["data"]
        assert data["properties"]["title"] == {"type": "string"}
        assert data["additionalProperties"] is True
        assert "required" not in data

        created.send(GeneratedPost, instance=GeneratedPost(id=1, title="Hello"))
        assert receiver.wait_for(1)[0].payload["data"] == {"id": 1, "title": "Hello"}

    def test_declared_schema_refuses_a_bad_payload(self, hook_app, connected, receiver):
        """A declared ``data`` schema (here on the inner class, for every event) is enforced:
        under "raise" the hook raises and nothing is sent."""
        from thorn_core import ModelEvent, webhook_model
        from thorn_core.binding import created

        @webhook_model
        class StrictPost(Post):
            class webhooks:
                schema = AUTHORED
                on_create = ModelEvent(
                    "post.published", examples=[{"id": 1, "title": "t", "author": "a"}]
                )

            def webhook_payload(self):
                return {"id": self.id, "title": self.title}

        connected(StrictPost)
        kind = hook_app.catalog.get("post.published")
        assert kind.examples[0]["data"]["author"] == "a"

        with pytest.raises(PayloadValidationError) as caught:
            created.send(StrictPost, instance=StrictPost(id=2, title="No author"))
        assert (caught.value.pointer, caught.value.rule) == ("/data", "required")
        assert receiver.received == []

    def test_formatted_names_are_left_out(self, hook_app, connected):
        """A name formatted per instance has no single type: it is not in the catalog."""
        from thorn_core import ModelEvent, webhook_model

        @webhook_model
        class NamedPost(Post):
            class webhooks:
                on_create = ModelEvent("post.{.id}.created")

        connected(NamedPost)
        assert hook_app.catalog.names() == []

    def test_clash_with_a_declared_type(self, hook_app, connected, caplog):
        """The app's own declaration wins over a model event's; the clash is logged."""
        from thorn_core import ModelEvent, webhook_model

        hook_app.event_type("post.created", schema={"type": "object"})

        @webhook_model
        class ClashingPost(Post):
            class webhooks:
                on_create = ModelEvent("post.created")

        connected(ClashingPost)
        with caplog.at_level(logging.WARNING, logger="thorn_core.catalog"):
            assert hook_app.catalog.get("post.created").schema == {"type": "object"}
        assert "Leaving" in caplog.text
