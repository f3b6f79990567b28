"""The published contract: ``thorn catalog`` as JSON, AsyncAPI 3.0 (checked by the official
parser) and Markdown."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from thorn_core import Thorn
from thorn_core.asyncapi import message_key, render_catalog, to_asyncapi, to_draft7, to_markdown
from thorn_core.cli import main

NPM = pathlib.Path(__file__).resolve().parents[1] / "_npm"
VALIDATE = NPM / "validate.mjs"

ORDER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "amount": {"type": "number", "minimum": 0},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
    },
    "required": ["id", "amount"],
    "$defs": {"line": {"type": "object", "properties": {"sku": {"type": "string"}}}},
}

#: The app ``thorn catalog --app tests.core.test_contract:shop`` reads.
shop = Thorn({"THORN_DISPATCHER": "disabled"}, set_as_current=False)
shop.event_type(
    "order.created",
    schema=ORDER,
    description="An order was placed.\n\nSent once per order.",
    examples=[{"id": 1, "amount": 12.5, "lines": [{"sku": "A-1"}]}],
)
shop.event_type("order.created", version="2", schema={"type": "object", "required": ["order"]})
shop.event_type("user.deleted", description="A user | account was removed.", deprecated=True)


def parser_problem() -> str | None:
    """Why the official AsyncAPI parser cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NPM / "node_modules" / "@asyncapi" / "parser").is_dir():
        return f"@asyncapi/parser is not installed: run npm ci --prefix {NPM}"
    return None


@pytest.fixture
def asyncapi_parser(tmp_path):
    """Validate a document with ``@asyncapi/parser``; skips without it, fails under CI=true."""
    problem = parser_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)

    def validate(document):
        path = tmp_path / "asyncapi.json"
        path.write_text(json.dumps(document))
        done = subprocess.run(  # noqa: S603 - node with our own script and file
            ["node", str(VALIDATE), str(path)],  # noqa: S607 - node from PATH
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.stdout, done.stderr
        return done.returncode, json.loads(done.stdout)

    return validate


def catalog_cli(*args):
    """Run ``thorn catalog`` in this process."""
    return CliRunner().invoke(main, ["catalog", *args], catch_exceptions=False)


class TestAsyncAPI:
    """The AsyncAPI 3.0 document."""

    def test_official_parser_accepts_it(self, asyncapi_parser):
        """The official parser reads the document without an error, with every type a message."""
        code, result = asyncapi_parser(to_asyncapi(shop.catalog))

        errors = [d for d in result["diagnostics"] if d["severity"] == 0]
        assert (code, errors) == (0, [])
        assert result["messages"] == ["order.created", "order.created", "user.deleted"]

    def test_official_parser_refuses_a_broken_schema(self, asyncapi_parser):
        """The parser really checks: a payload schema with an unknown type fails it."""
        document = to_asyncapi(shop.catalog)
        message = document["components"]["messages"]["order.created.v1"]
        message["payload"]["schema"]["properties"]["id"]["type"] = "int"

        code, result = asyncapi_parser(document)

        assert code == 1
        assert any(d["severity"] == 0 for d in result["diagnostics"])

    def test_messages_on_the_webhook_channel(self):
        """Each type is a message on the webhook channel, sent by one POST operation, with
        the Hook-* and Standard Webhooks headers, its payload schema and examples."""
        document = to_asyncapi(shop.catalog, title="Shop")

        assert document["asyncapi"] == "3.0.0"
        assert document["info"]["title"] == "Shop"
        channel = document["channels"]["webhook"]
        keys = ["order.created.v1", "order.created.v2", "user.deleted.v1"]
        assert list(channel["messages"]) == keys
        operation = document["operations"]["sendWebhook"]
        assert operation["action"] == "send"
        assert operation["bindings"]["http"]["method"] == "POST"
        message = document["components"]["messages"]["order.created.v1"]
        headers = message["headers"]
        for name in ("Hook-Event", "Hook-Delivery", "Hook-HMAC", "Hook-Subscription"):
            assert name in headers["properties"]
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            assert name in headers["required"]
        assert headers["properties"]["Hook-Event"]["const"] == "order.created"
        assert message["summary"] == "An order was placed."
        assert message["examples"][0]["payload"]["lines"] == [{"sku": "A-1"}]
        assert document["components"]["messages"]["user.deleted.v1"]["x-deprecated"] is True

    def test_schema_in_draft_7_words(self):
        """The payload is given in draft 7 (what AsyncAPI tools read), translated from
        2020-12, and the exact 2020-12 schema is published beside it."""
        message = to_asyncapi(shop.catalog)["components"]["messages"]["order.created.v1"]

        payload = message["payload"]
        assert payload["schemaFormat"] == "application/schema+json;version=draft-07"
        where = "#/components/messages/order.created.v1"
        assert payload["schema"]["properties"]["lines"]["items"] == {
            "$ref": f"{where}/payload/schema/definitions/line"
        }
        assert "line" in payload["schema"]["definitions"]
        exact = message["x-json-schema-2020-12"]
        assert exact["$defs"] == ORDER["$defs"]
        assert exact["properties"]["lines"]["items"] == {
            "$ref": f"{where}/x-json-schema-2020-12/$defs/line"
        }

    def test_draft7_translation(self):
        """prefixItems, dependentRequired and $defs take their draft 7 names."""
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "array",
            "prefixItems": [{"type": "string"}],
            "items": {"type": "integer"},
            "dependentRequired": {"a": ["b"]},
        }
        assert to_draft7(schema) == {
            "type": "array",
            "items": [{"type": "string"}],
            "additionalItems": {"type": "integer"},
            "dependencies": {"a": ["b"]},
        }

    def test_message_keys(self):
        """Message keys keep only the characters AsyncAPI allows."""
        kind = shop.catalog.get("order.created", "1")
        assert message_key(kind) == "order.created.v1"


class TestCommandLine:
    """``thorn catalog --app MODULE:NAME --format ...``."""

    def test_json(self):
        """``--format json`` lists every type with its schema and examples."""
        result = catalog_cli("--app", "tests.core.test_contract:shop", "--format", "json")

        assert result.exit_code == 0, result.output
        types = json.loads(result.output)["event_types"]
        assert [(t["name"], t["version"]) for t in types] == [
            ("order.created", "1"),
            ("order.created", "2"),
            ("user.deleted", "1"),
        ]
        assert types[0]["schema"] == ORDER

    def test_asyncapi_to_a_file(self, tmp_path):
        """``--format asyncapi -o FILE`` writes the document (the one the parser accepts)."""
        target = tmp_path / "contract.json"
        result = catalog_cli(
            "--app", "tests.core.test_contract:shop", "--format", "asyncapi", "-o", str(target)
        )

        assert result.exit_code == 0, result.output
        assert json.loads(target.read_text()) == to_asyncapi(shop.catalog)

    def test_markdown(self):
        """``--format markdown`` writes a table, then each type's schema and examples."""
        result = catalog_cli("--app", "tests.core.test_contract:shop", "--format", "markdown")

        assert result.exit_code == 0, result.output
        text = result.output
        assert text.startswith("# Event catalog\n")
        assert "| [`order.created`](#ordercreated-v1) | 1 | An order was placed. |" in text
        assert "| **Deprecated.** A user \\| account was removed. |" in text
        assert "## order.created v2" in text
        assert '"sku": "A-1"' in text

    def test_not_an_app(self):
        """``--app`` naming something that is not an app is a usage error."""
        result = catalog_cli("--app", "tests.core.test_contract:ORDER")

        assert result.exit_code == 2
        assert "not a Thorn app" in result.output

    def test_unknown_format(self):
        """An unknown format is refused by the option, listing the known ones."""
        result = catalog_cli("--app", "tests.core.test_contract:shop", "--format", "yaml")

        assert result.exit_code == 2
        assert "json" in result.output

    def test_installed_command(self):
        """The installed ``thorn`` script writes the catalog (a real process)."""
        script = pathlib.Path(sys.executable).parent / "thorn"
        done = subprocess.run(  # noqa: S603 - the project's own script, fixed arguments
            [str(script), "catalog", "--app", "tests.core.test_contract:shop"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=NPM.parents[1],
        )
        assert done.returncode == 0, done.stderr
        assert len(json.loads(done.stdout)["event_types"]) == 3


class TestRendering:
    """render_catalog and the empty catalog."""

    def test_empty(self):
        """An app without types writes an empty contract, not an error."""
        app = Thorn({"THORN_DISPATCHER": "disabled"}, set_as_current=False)
        assert json.loads(render_catalog(app.catalog, "json")) == {"event_types": []}
        assert "No event types" in to_markdown(app.catalog)
        assert to_asyncapi(app.catalog)["channels"]["webhook"]["messages"] == {}

    def test_unknown_format(self):
        """render_catalog names the known formats."""
        with pytest.raises(ValueError, match="json, asyncapi, markdown"):
            render_catalog(shop.catalog, "yaml")
