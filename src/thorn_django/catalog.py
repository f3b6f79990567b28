"""JSON Schemas of Django REST Framework serializers and Django models, for the event catalog."""

from __future__ import annotations

from typing import Any

from django.db import models

__all__ = ["model_schema", "schema_of", "serializer_schema"]


def _nullable(schema: dict[str, Any], nullable: bool) -> dict[str, Any]:
    if not nullable:
        return schema
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


# --- Django REST Framework ---------------------------------------------------------------------


def _field_schema(field: Any) -> dict[str, Any]:
    """The schema of what a serializer field renders (its ``to_representation``)."""
    from rest_framework import fields as f
    from rest_framework import relations as r
    from rest_framework import serializers as s

    if isinstance(field, s.ListSerializer):
        schema: dict[str, Any] = {"type": "array", "items": _field_schema(field.child)}
    elif isinstance(field, s.BaseSerializer):
        schema = serializer_schema(field)
    elif isinstance(field, r.ManyRelatedField):
        schema = {"type": "array", "items": _field_schema(field.child_relation)}
    elif isinstance(field, (r.HyperlinkedRelatedField, f.URLField)):
        schema = {"type": "string", "format": "uri"}
    elif isinstance(field, r.PrimaryKeyRelatedField):
        schema = {"type": ["integer", "string"]}
    elif isinstance(field, f.BooleanField):
        schema = {"type": "boolean"}
    elif isinstance(field, f.IntegerField):
        schema = {"type": "integer"}
        if field.min_value is not None:
            schema["minimum"] = field.min_value
        if field.max_value is not None:
            schema["maximum"] = field.max_value
    elif isinstance(field, f.FloatField):
        schema = {"type": "number"}
    elif isinstance(field, f.DecimalField):
        # Rendered as a string unless COERCE_DECIMAL_TO_STRING is off: either is accepted.
        schema = {"type": ["string", "number"]}
    elif isinstance(field, f.DateTimeField):
        schema = {"type": "string", "format": "date-time"}
    elif isinstance(field, f.DateField):
        schema = {"type": "string", "format": "date"}
    elif isinstance(field, f.TimeField):
        schema = {"type": "string", "format": "time"}
    elif isinstance(field, f.UUIDField):
        schema = {"type": "string", "format": "uuid"}
    elif isinstance(field, f.EmailField):
        schema = {"type": "string", "format": "email"}
    elif isinstance(field, f.MultipleChoiceField):
        schema = {"type": "array", "items": {"enum": list(field.choices)}}
    elif isinstance(field, f.ChoiceField):
        schema = {"enum": list(field.choices)}
    elif isinstance(field, f.CharField):
        schema = {"type": "string"}
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
    elif isinstance(field, f.ListField):
        schema = {"type": "array", "items": _field_schema(field.child)}
    elif isinstance(field, f.DictField):
        schema = {"type": "object", "additionalProperties": _field_schema(field.child)}
    else:  # JSONField, ReadOnlyField, SerializerMethodField, custom fields: anything
        schema = {}
    if getattr(field, "help_text", None):
        schema = {**schema, "description": str(field.help_text)}
    return _nullable(schema, bool(getattr(field, "allow_null", False)) and bool(schema))


def serializer_schema(serializer: Any) -> dict[str, Any]:
    """The schema of a serializer's output (``serializer.data``): every readable field,
    all present, no other.

    Args:
        serializer: a serializer class or instance.
    """
    instance = serializer() if isinstance(serializer, type) else serializer
    readable = {name: field for name, field in instance.fields.items() if not field.write_only}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: _field_schema(field) for name, field in readable.items()},
        "required": list(readable),
        "additionalProperties": False,
    }
    doc = (type(instance).__doc__ or "").strip()
    if doc:
        schema["description"] = doc.splitlines()[0]
    if not readable:
        del schema["required"]
    return schema


# --- Django models ----------------------------------------------------------------------------

_MODEL_FIELDS: tuple[tuple[type[models.Field[Any, Any]], dict[str, Any]], ...] = (
    (models.BooleanField, {"type": "boolean"}),
    (models.AutoField, {"type": "integer"}),
    (models.BigAutoField, {"type": "integer"}),
    (models.IntegerField, {"type": "integer"}),
    (models.FloatField, {"type": "number"}),
    (models.DecimalField, {"type": ["string", "number"]}),
    (models.DateTimeField, {"type": "string", "format": "date-time"}),
    (models.DateField, {"type": "string", "format": "date"}),
    (models.TimeField, {"type": "string", "format": "time"}),
    (models.UUIDField, {"type": "string", "format": "uuid"}),
    (models.EmailField, {"type": "string", "format": "email"}),
    (models.URLField, {"type": "string", "format": "uri"}),
    (models.CharField, {"type": "string"}),
    (models.TextField, {"type": "string"}),
    (models.JSONField, {}),
)


def _model_field_schema(field: models.Field[Any, Any]) -> dict[str, Any]:
    if isinstance(field, models.ForeignKey):
        return _nullable(_model_field_schema(field.target_field), field.null)
    for kind, schema in _MODEL_FIELDS:
        if isinstance(field, kind):
            result = dict(schema)
            if isinstance(field, models.CharField) and field.max_length:
                result["maxLength"] = field.max_length
            if field.choices:
                result = {"enum": [value for value, _ in field.flatchoices]}
            return _nullable(result, field.null) if result else result
    return {}


def model_schema(model: type[models.Model]) -> dict[str, Any]:
    """The schema of a model's concrete fields, by attribute name (``author_id`` for a
    foreign key): what ``model_to_dict``-like payloads carry."""
    fields = [f for f in model._meta.concrete_fields]
    return {
        "type": "object",
        "properties": {f.attname: _model_field_schema(f) for f in fields},
        "required": [f.attname for f in fields],
        "additionalProperties": False,
    }


def schema_of(source: Any) -> dict[str, Any] | None:
    """The catalog's deriver for Django: a DRF serializer (class or instance) or a model class;
    None for anything else."""
    if isinstance(source, type) and issubclass(source, models.Model):
        return model_schema(source)
    try:
        from rest_framework.serializers import BaseSerializer
    except ImportError:  # DRF is optional
        return None
    if isinstance(source, BaseSerializer) or (
        isinstance(source, type) and issubclass(source, BaseSerializer)
    ):
        return serializer_schema(source)
    return None
