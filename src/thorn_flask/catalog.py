"""The event catalog in Flask: JSON Schemas of SQLAlchemy models, and the API's catalog routes."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import IO, Any

import click
import flask
import sqlalchemy as sa
from flask.cli import with_appcontext
from sqlalchemy.orm import DeclarativeBase

from thorn_core.asyncapi import FORMATS, render_catalog, to_asyncapi

from .extension import get_state

__all__ = ["add_catalog_routes", "catalog_command", "model_schema", "schema_of"]

_PYTHON_TYPES: tuple[tuple[type, dict[str, Any]], ...] = (
    (bool, {"type": "boolean"}),
    (int, {"type": "integer"}),
    (float, {"type": "number"}),
    (decimal.Decimal, {"type": ["string", "number"]}),
    (datetime.datetime, {"type": "string", "format": "date-time"}),
    (datetime.date, {"type": "string", "format": "date"}),
    (datetime.time, {"type": "string", "format": "time"}),
    (uuid.UUID, {"type": "string", "format": "uuid"}),
    (str, {"type": "string"}),
)


def _column_schema(column: sa.Column[Any]) -> dict[str, Any]:
    """The schema of a column's values, from its type's Python type."""
    kind = column.type
    if isinstance(kind, sa.Enum) and kind.enums:
        schema: dict[str, Any] = {"enum": list(kind.enums)}
    elif isinstance(kind, sa.JSON):
        return {}
    else:
        try:
            python = kind.python_type
        except NotImplementedError:
            return {}
        schema = {}
        for known, known_schema in _PYTHON_TYPES:
            if issubclass(python, known):
                schema = dict(known_schema)
                break
        length = getattr(kind, "length", None)
        if schema.get("type") == "string" and "format" not in schema and length:
            schema["maxLength"] = length
    if column.nullable and schema:
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        else:
            schema["type"] = [schema["type"], "null"]
    return schema


def model_schema(model: type[Any]) -> dict[str, Any]:
    """The schema of a mapped class's columns, by attribute key: what a payload made of its
    columns carries."""
    mapper = sa.inspect(model)
    columns = [(attr.key, attr.columns[0]) for attr in mapper.column_attrs]
    return {
        "type": "object",
        "properties": {key: _column_schema(column) for key, column in columns},
        "required": [key for key, _ in columns],
        "additionalProperties": False,
    }


def schema_of(source: Any) -> dict[str, Any] | None:
    """The catalog's deriver for SQLAlchemy: a mapped class; None for anything else."""
    if not isinstance(source, type):
        return None
    if issubclass(source, DeclarativeBase):
        return model_schema(source) if hasattr(source, "__table__") else None
    try:
        sa.inspect(source)
    except sa.exc.NoInspectionAvailable:
        return None
    return model_schema(source)


def add_catalog_routes(blueprint: flask.Blueprint) -> None:
    """``GET /event-types/`` (every type), ``GET /event-types/<name>`` (the newest version, or
    ``?version=``) and ``GET /asyncapi.json`` (the AsyncAPI 3.0 document)."""

    @blueprint.get("/event-types/")
    def event_types() -> Any:
        return [t.to_dict() for t in get_state().core.catalog.types()]

    @blueprint.get("/event-types/<name>")
    def event_type(name: str) -> Any:
        catalog = get_state().core.catalog
        version = flask.request.args.get("version")
        found = catalog.get(name, version)
        if found is None:
            known = ", ".join(catalog.names()) or "none"
            what = f"{name!r} version {version}" if version else repr(name)
            return {"detail": f"no event type {what}; declared: {known}"}, 404
        return {**found.to_dict(), "versions": catalog.versions(found.name)}

    @blueprint.get("/asyncapi.json")
    def asyncapi() -> Any:
        title = f"{flask.request.host} webhooks"
        return flask.jsonify(to_asyncapi(get_state().core.catalog, title=title))


@click.command("catalog")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="json",
    show_default=True,
    help="json: the types with their schemas; asyncapi: an AsyncAPI 3.0 document; markdown: "
    "a page for people.",
)
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="Write here instead of standard output.",
)
@with_appcontext
def catalog_command(fmt: str, output: IO[str]) -> None:
    """Write the app's event catalog: the published contract of its webhooks."""
    output.write(render_catalog(get_state().core.catalog, fmt))
