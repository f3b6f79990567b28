"""The published contract: an app's event catalog as JSON, an AsyncAPI 3.0 document or Markdown."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .catalog import DRAFT_2020_12, EventType

if TYPE_CHECKING:
    from .catalog import Catalog

__all__ = ["FORMATS", "catalog_document", "render_catalog", "to_asyncapi", "to_markdown"]

#: What ``thorn catalog --format`` writes.
FORMATS = ("json", "asyncapi", "markdown")

#: The channel every webhook goes out on: the subscriber's URL, which each subscription sets.
CHANNEL = "webhook"
#: The payload's ``schemaFormat``: draft 7, the JSON Schema AsyncAPI 3.0 tools all read (the
#: official parser knows no later draft); the catalog's 2020-12 schemas are translated.
SCHEMA_FORMAT = "application/schema+json;version=draft-07"

#: The headers of every delivery, as the receiver sees them.
_HEADERS: dict[str, dict[str, Any]] = {
    "Hook-Event": {"type": "string", "description": "The event name."},
    "Hook-Delivery": {
        "type": "string",
        "description": "The delivery id: the same on every retry, the receiver's idempotency key.",
    },
    "Hook-Subscription": {"type": "string", "description": "The subscription's UUID."},
    "Hook-HMAC": {
        "type": "string",
        "description": "Base64 HMAC of the body with the subscription's secret (its digest, "
        "SHA-256 by default); absent when the subscription signs with ed25519 only.",
    },
    "User-Agent": {"type": "string", "description": "Names Thorn and its version."},
    "Content-Type": {
        "type": "string",
        "description": "application/json, or application/x-www-form-urlencoded when the "
        "subscription asks for it.",
    },
    "webhook-id": {
        "type": "string",
        "description": "Standard Webhooks: the message id (the delivery id).",
    },
    "webhook-timestamp": {
        "type": "string",
        "pattern": "^[0-9]+$",
        "description": "Standard Webhooks: seconds since the epoch when signed.",
    },
    "webhook-signature": {
        "type": "string",
        "description": "Standard Webhooks: space-separated v1 (HMAC-SHA256) or v1a (ed25519) "
        "signatures of id.timestamp.body, one per live secret.",
    },
}
_REQUIRED_HEADERS = [
    "Hook-Event",
    "Hook-Delivery",
    "Hook-Subscription",
    "User-Agent",
    "Content-Type",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
]


def rebase(schema: Any, base: str) -> Any:
    """``schema`` with its local references (``#...``) made relative to ``base``, the JSON
    pointer where it sits in a larger document (AsyncAPI resolves from the document's root)."""
    if isinstance(schema, list):
        return [rebase(item, base) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: base + value[1:]
        if key == "$ref" and isinstance(value, str) and value.startswith("#")
        else value
        if key in ("enum", "const", "examples", "default")
        else rebase(value, base)
        for key, value in schema.items()
    }


def to_draft7(schema: Any) -> Any:
    """A 2020-12 schema in draft 7 words: ``$defs`` as ``definitions``, ``prefixItems`` and
    ``items`` as ``items`` and ``additionalItems``, ``dependentRequired`` and
    ``dependentSchemas`` as ``dependencies``. Keywords draft 7 lacks (``unevaluated*``,
    ``minContains``...) are kept; the exact schema is published beside it."""
    if isinstance(schema, list):
        return [to_draft7(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$schema":
            continue
        if key == "$defs":
            out["definitions"] = {name: to_draft7(sub) for name, sub in value.items()}
        elif key == "$ref" and isinstance(value, str):
            out["$ref"] = value.replace("#/$defs/", "#/definitions/")
        elif key == "prefixItems":
            out["items"] = to_draft7(value)
            if "items" in schema:
                out["additionalItems"] = to_draft7(schema["items"])
        elif key == "items" and "prefixItems" in schema:
            continue
        elif key in ("dependentRequired", "dependentSchemas"):
            out.setdefault("dependencies", {}).update(
                {name: to_draft7(sub) for name, sub in value.items()}
            )
        elif key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: to_draft7(sub) for name, sub in value.items()}
        elif key in ("enum", "const", "examples", "default", "required"):
            out[key] = value
        else:
            out[key] = to_draft7(value)
    return out


def catalog_document(catalog: Catalog) -> dict[str, Any]:
    """The catalog as JSON: every type with its schema and examples (``--format json``)."""
    return {"event_types": [event_type.to_dict() for event_type in catalog.types()]}


def message_key(event_type: EventType) -> str:
    """The AsyncAPI component key of a type: its name and version, in the allowed characters."""
    return re.sub(r"[^\w.\-]", "_", f"{event_type.name}.v{event_type.version}")


def _message(event_type: EventType, key: str) -> dict[str, Any]:
    """One event type as an AsyncAPI 3.0 Message Object, at ``#/components/messages/<key>``."""
    where = f"#/components/messages/{key}"
    payload = to_draft7(event_type.schema)
    message: dict[str, Any] = {
        "name": event_type.name,
        "title": f"{event_type.name} (version {event_type.version})",
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {
                **_HEADERS,
                "Hook-Event": {**_HEADERS["Hook-Event"], "const": event_type.name},
            },
            "required": _REQUIRED_HEADERS,
        },
        "payload": {
            "schemaFormat": SCHEMA_FORMAT,
            "schema": rebase(payload, f"{where}/payload/schema"),
        },
        "x-thorn-version": event_type.version,
    }
    if payload != event_type.schema:
        message["x-json-schema-2020-12"] = rebase(
            event_type.schema, f"{where}/x-json-schema-2020-12"
        )
    if event_type.description:
        message["summary"] = event_type.description.strip().splitlines()[0]
        message["description"] = event_type.description
    if event_type.deprecated:
        message["x-deprecated"] = True
    if event_type.examples:
        message["examples"] = [
            {
                "name": f"example{index + 1}",
                "headers": {"Hook-Event": event_type.name},
                "payload": example,
            }
            for index, example in enumerate(event_type.examples)
        ]
    return message


def to_asyncapi(
    catalog: Catalog, *, title: str = "Webhooks", version: str = "1.0.0", description: str = ""
) -> dict[str, Any]:
    """The catalog as an AsyncAPI 3.0 document: each type a message on the webhook channel,
    sent by the application with an HTTP POST to the subscriber's URL."""
    types = catalog.types()
    keys = [message_key(event_type) for event_type in types]
    info: dict[str, Any] = {
        "title": title,
        "version": version,
        "description": description
        or (
            "Webhooks sent with Thorn: each is an HTTP POST of a JSON body to the URL of a "
            "subscription whose pattern matches the event, signed with Hook-HMAC and the "
            "Standard Webhooks headers."
        ),
        "x-generator": f"thorn {__version__}",
    }
    return {
        "asyncapi": "3.0.0",
        "info": info,
        "defaultContentType": "application/json",
        "channels": {
            CHANNEL: {
                "address": None,
                "title": "The subscriber's webhook URL",
                "description": "Each subscription names its own URL; it receives the events "
                "its pattern matches.",
                "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in keys},
            }
        },
        "operations": {
            "sendWebhook": {
                "action": "send",
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "summary": "POST an event to a subscriber.",
                "bindings": {"http": {"method": "POST", "bindingVersion": "0.3.0"}},
                "messages": [{"$ref": f"#/channels/{CHANNEL}/messages/{key}"} for key in keys],
            }
        },
        "components": {
            "messages": {key: _message(t, key) for key, t in zip(keys, types, strict=True)},
        },
    }


def _markdown_block(value: Any) -> str:
    return "```json\n" + json.dumps(value, indent=2, sort_keys=False, default=str) + "\n```"


def to_markdown(catalog: Catalog, *, title: str = "Event catalog") -> str:
    """The catalog as a Markdown page: a table of types, then each type's schema and examples."""
    types = catalog.types()
    lines = [f"# {title}", ""]
    if not types:
        lines += ["No event types are declared.", ""]
        return "\n".join(lines)
    lines += [
        f"Payload schemas are JSON Schema ({DRAFT_2020_12}). Every delivery carries the "
        "headers Hook-Event, Hook-Delivery, Hook-Subscription, Hook-HMAC, User-Agent, "
        "Content-Type, webhook-id, webhook-timestamp and webhook-signature.",
        "",
        "| event | version | description |",
        "| --- | --- | --- |",
    ]
    for t in types:
        summary = t.description.strip().splitlines()[0] if t.description else ""
        if t.deprecated:
            summary = f"**Deprecated.** {summary}".strip()
        # The heading's id as Python-Markdown (MkDocs) makes it: word characters and hyphens.
        anchor = re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", f"{t.name} v{t.version}")).lower()
        cell = summary.replace("|", "\\|")
        lines.append(f"| [`{t.name}`](#{anchor}) | {t.version} | {cell} |")
    for t in types:
        lines += ["", f"## {t.name} v{t.version}", ""]
        if t.deprecated:
            lines += ["**Deprecated.**", ""]
        if t.description:
            lines += [t.description.strip(), ""]
        lines += ["Schema:", "", _markdown_block(t.schema)]
        for index, example in enumerate(t.examples, 1):
            lines += ["", f"Example {index}:", "", _markdown_block(example)]
    lines.append("")
    return "\n".join(lines)


def render_catalog(catalog: Catalog, fmt: str, *, title: str | None = None) -> str:
    """The text ``thorn catalog --format fmt`` writes.

    Raises:
        ValueError: an unknown format, naming the known ones.
    """
    if fmt == "json":
        return json.dumps(catalog_document(catalog), indent=2, default=str) + "\n"
    if fmt == "asyncapi":
        document = to_asyncapi(catalog, title=title or "Webhooks")
        return json.dumps(document, indent=2, default=str) + "\n"
    if fmt == "markdown":
        return to_markdown(catalog, title=title or "Event catalog")
    raise ValueError(f"unknown catalog format {fmt!r}; known: {', '.join(FORMATS)}")
