"""The event catalog: typed, versioned events with JSON Schemas, checked when a payload is sent."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import decimal
import re
import threading
import types
import typing
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from .exceptions import InvalidEventType, PayloadValidationError
from .patterns import candidate_patterns, validate_event_name, validate_pattern
from .telemetry import get_logger

__all__ = [
    "DRAFT_2020_12",
    "Catalog",
    "EventType",
    "SchemaDeriver",
    "TypeProvider",
    "add_schema_deriver",
    "add_type_provider",
    "derive_schema",
    "remove_schema_deriver",
]

logger = get_logger(__name__)

#: The JSON Schema dialect of every schema in the catalog.
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

#: Turns a class (a DRF serializer, an SQLAlchemy model...) into a JSON Schema, or None
#: when it does not know the class. Adapters add theirs with :func:`add_schema_deriver`.
SchemaDeriver = Callable[[Any], "dict[str, Any] | None"]

_derivers_lock = threading.Lock()
_derivers: tuple[SchemaDeriver, ...] = ()


def add_schema_deriver(deriver: SchemaDeriver) -> None:
    """Let ``deriver`` turn the classes it knows into schemas (asked before the built-ins).

    Adding one twice adds it once: adapters call this when they are wired.
    """
    global _derivers
    with _derivers_lock:
        if deriver not in _derivers:
            _derivers = (deriver, *_derivers)


def remove_schema_deriver(deriver: SchemaDeriver) -> None:
    """Undo :func:`add_schema_deriver`."""
    global _derivers
    with _derivers_lock:
        _derivers = tuple(known for known in _derivers if known != deriver)


_SCALAR_SCHEMAS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    decimal.Decimal: {"type": "number"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    datetime.time: {"type": "string", "format": "time"},
    type(None): {"type": "null"},
    Any: {},
}


def _annotation_schema(annotation: Any) -> dict[str, Any]:
    """The schema of a field annotation: scalars, lists, dicts, optionals and nested classes."""
    if annotation in _SCALAR_SCHEMAS:
        return dict(_SCALAR_SCHEMAS[annotation])
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_annotation_schema(arg) for arg in args]}
    if origin in (list, tuple, set, frozenset, Iterable, typing.Sequence) or annotation in (
        list,
        tuple,
    ):
        item = args[0] if args and args[0] is not Ellipsis else Any
        return {"type": "array", "items": _annotation_schema(item)}
    if origin in (dict, Mapping) or annotation is dict:
        value = args[1] if len(args) == 2 else Any
        return {"type": "object", "additionalProperties": _annotation_schema(value)}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if isinstance(annotation, type) and (
        dataclasses.is_dataclass(annotation) or attrs.has(annotation)
    ):
        return _class_schema(annotation)
    return {}


def _class_schema(cls: type) -> dict[str, Any]:
    """An object schema from a dataclass or attrs class: a property per field, fields
    without a default required, no other property."""
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    if attrs.has(cls):
        for field in attrs.fields(cls):
            properties[field.name] = _annotation_schema(hints.get(field.name, Any))
            if field.default is attrs.NOTHING:
                required.append(field.name)
    else:
        for dc_field in dataclasses.fields(cls):
            properties[dc_field.name] = _annotation_schema(hints.get(dc_field.name, Any))
            if (
                dc_field.default is dataclasses.MISSING
                and dc_field.default_factory is dataclasses.MISSING
            ):
                required.append(dc_field.name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
        schema["description"] = cls.__doc__.strip().splitlines()[0]
    return schema


def derive_schema(source: Any) -> dict[str, Any]:
    """The JSON Schema of ``source``: a mapping (taken as is), a dataclass or attrs class, or a
    class an adapter's deriver knows (a DRF serializer, an SQLAlchemy model); a class may be
    given as ``"package.module:Name"``.

    Raises:
        InvalidEventType: nothing knows how to turn ``source`` into a schema.
    """
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, str):  # "package.module:Name", as settings give classes
        from .exceptions import ImproperlyConfigured
        from .signing import _import_string

        try:
            source = _import_string(source, what="the schema")
        except ImproperlyConfigured as exc:
            raise InvalidEventType(str(exc)) from exc
    for deriver in _derivers:
        schema = deriver(source)
        if schema is not None:
            return schema
    if isinstance(source, type) and (dataclasses.is_dataclass(source) or attrs.has(source)):
        try:
            return _class_schema(source)
        except (NameError, TypeError) as exc:
            raise InvalidEventType(
                f"cannot derive a schema from {source.__qualname__}: {exc}"
            ) from exc
    raise InvalidEventType(
        f"schema must be a JSON Schema mapping, a dataclass or attrs class, or a class an "
        f"adapter knows (a DRF serializer, an SQLAlchemy model), got {source!r}"
    )


class TypeProvider(Protocol):
    """Something that declares event types for the catalog of its app, read when a catalog
    is next used: model events (:class:`~thorn_core.ModelEvent`) are providers."""

    def belongs_to(self, app: Any) -> bool:
        """Whether ``app``'s catalog gets the types."""

    def event_types(self) -> list[EventType]:
        """The types to declare (none when the provider cannot describe its payload)."""


_providers: weakref.WeakSet[Any] = weakref.WeakSet()
#: Changes each time a provider is added, so that catalogs know to read them again.
_provider_generation = 0


def add_type_provider(provider: TypeProvider) -> None:
    """Have ``provider``'s types declared in its app's catalog (held weakly)."""
    global _provider_generation
    with _derivers_lock:
        _providers.add(provider)
        _provider_generation += 1


# --- validators ----------------------------------------------------------------------------

#: Keywords whose meaning is the same in draft 7 (fastjsonschema's newest) and in 2020-12,
#: when used as below; a schema with any other keyword is judged by jsonschema alone.
_FAST_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "enum", "const",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems",
        "minProperties", "maxProperties", "patternProperties", "propertyNames",
        "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "contains",
        "title", "description", "default", "examples", "deprecated", "readOnly",
        "writeOnly", "$comment", "format", "items", "$schema", "$id",
    }
)  # fmt: skip
#: Keywords of annotation only (2020-12 does not assert ``format`` by default): left out of
#: the schema compiled for the fast path, since fastjsonschema would assert formats.
_ANNOTATIONS = frozenset({"format", "$schema", "$id", "examples", "deprecated", "$comment"})
_SCHEMA_MAPS = ("properties", "patternProperties")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SUBSCHEMAS = ("additionalProperties", "propertyNames", "not", "if", "then", "else", "contains")


def _fast_form(schema: Any) -> Any:
    """``schema`` without annotations, if fastjsonschema reads it as 2020-12 does; else None."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, Mapping) or not _FAST_KEYWORDS.issuperset(schema):
        return None
    fast: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key in _SCHEMA_MAPS:
            inner = {name: _fast_form(sub) for name, sub in value.items()}
            if any(sub is None for sub in inner.values()):
                return None
            fast[key] = inner
        elif key in _SCHEMA_LISTS:
            items = [_fast_form(sub) for sub in value]
            if any(sub is None for sub in items):
                return None
            fast[key] = items
        elif key in _SUBSCHEMAS or key == "items":
            if key == "items" and not isinstance(value, (Mapping, bool)):
                return None  # a list of schemas is a tuple in draft 7
            sub = _fast_form(value)
            if sub is None:
                return None
            fast[key] = sub
        else:
            fast[key] = value
    return fast


def _json_types() -> Any:
    """jsonschema's 2020-12 type checker, widened to what Thorn's JSON codec encodes:
    tuples are arrays, dates, times, UUIDs and lazy strings are strings, Decimals numbers."""
    from jsonschema import Draft202012Validator

    checker = Draft202012Validator.TYPE_CHECKER

    def is_array(_: object, value: object) -> bool:
        return isinstance(value, (list, tuple))

    def is_string(_: object, value: object) -> bool:
        return isinstance(value, (str, datetime.date, datetime.time, uuid.UUID)) or (
            type(value).__name__ == "__proxy__"  # Django's lazy strings
        )

    def is_number(_: object, value: object) -> bool:
        return isinstance(value, decimal.Decimal) or checker.is_type(value, "number")

    return checker.redefine_many({"array": is_array, "string": is_string, "number": is_number})


_validator_class: Any = None


def _validator_for(schema: Mapping[str, Any]) -> Any:
    """A jsonschema 2020-12 validator of ``schema`` that reads payloads as Thorn encodes them."""
    global _validator_class
    if _validator_class is None:
        from jsonschema import Draft202012Validator, validators

        _validator_class = validators.extend(  # type: ignore[no-untyped-call]
            Draft202012Validator, type_checker=_json_types()
        )
    return _validator_class(schema)


def _pointer(path: Iterable[Any]) -> str:
    """The JSON pointer (RFC 6901) of a path of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


class _Judge:
    """One type's compiled validator: fastjsonschema where it reads the schema exactly as
    2020-12 does (a payload it refuses is judged again by jsonschema, which names the rule),
    jsonschema alone otherwise."""

    def __init__(self, event_type: EventType) -> None:
        self.event_type = event_type
        self.full = _validator_for(event_type.schema)
        self.fast: Callable[[Any], Any] | None = None
        fast_schema = _fast_form(event_type.schema)
        if fast_schema is not None:
            try:
                import fastjsonschema
            except ImportError:
                pass
            else:
                try:
                    self.fast = fastjsonschema.compile(fast_schema, use_formats=False)
                except Exception:  # a schema it cannot compile: jsonschema judges alone
                    self.fast = None

    def error(self, data: Any) -> PayloadValidationError | None:
        """The first way ``data`` breaks the schema, or None when it keeps it."""
        fast = self.fast
        try:
            if fast is not None:
                # Refused, or a type it does not know (a datetime): jsonschema decides.
                with contextlib.suppress(Exception):
                    fast(data)
                    return None
            error = next(iter(self.full.iter_errors(data)), None)
        except RecursionError:
            kind = self.event_type
            return PayloadValidationError(
                kind.name, kind.version, "", "depth", "the payload is nested too deep to validate"
            )
        if error is None:
            return None
        best = _best(error)
        kind = self.event_type
        return PayloadValidationError(
            kind.name,
            kind.version,
            _pointer(best.absolute_path),
            str(best.validator),
            best.message if len(best.message) <= 300 else best.message[:297] + "...",
        )


def _best(error: Any) -> Any:
    """The most specific error: jsonschema's ranking among ``anyOf``/``oneOf`` branches."""
    if error.context:
        from jsonschema.exceptions import best_match

        return best_match([error])
    return error


# --- event types -----------------------------------------------------------------------------


def _version(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}", value):
        raise InvalidEventType(
            f"version must be a short string of letters, digits, '.', '_' or '-' "
            f"(such as '1' or '2024-06-01'), got {value!r}"
        )


def _name(_: object, __: attrs.Attribute[Any], value: object) -> None:
    validate_event_name(value)


def _check_schema(instance: EventType, _: attrs.Attribute[Any], value: dict[str, Any]) -> None:
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError
    except ImportError as exc:  # the first use of the catalog
        from .exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "event types need the jsonschema package (and fastjsonschema for fast checks): "
            "pip install 'thorn-webhooks[catalog]'"
        ) from exc

    declared = value.get("$schema", DRAFT_2020_12)
    if declared.rstrip("#") != DRAFT_2020_12:
        raise InvalidEventType(
            f"the schema of {instance.name!r} declares $schema {declared!r}; "
            f"Thorn reads JSON Schema draft 2020-12 ({DRAFT_2020_12})"
        )
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        where = _pointer(exc.absolute_path)
        raise InvalidEventType(
            f"the schema of {instance.name!r} is not valid JSON Schema (draft 2020-12) at "
            f"{where or '/'}: {exc.message}"
        ) from exc


def _schema(value: Any) -> dict[str, Any]:
    return derive_schema({} if value is None else value)


def _examples(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidEventType(f"examples must be a list of payloads, got {value!r}")
    return tuple(value)


def _text(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise InvalidEventType(f"{attribute.name} must be a string, got {value!r}")


def _flag(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidEventType(f"{attribute.name} must be True or False, got {value!r}")


@attrs.frozen(kw_only=True)
class EventType:
    """One declared event: its name, version, payload schema, description and examples.

    The schema is JSON Schema draft 2020-12, or derived from a dataclass or attrs class (or a
    class an adapter knows). Each example must keep the schema.

    Raises:
        InvalidEventType: a schema that is not JSON Schema, an example it refuses, a bad
            version; InvalidEventName for a malformed name.
    """

    name: str = attrs.field(validator=_name)
    version: str = attrs.field(default="1", validator=_version)
    schema: dict[str, Any] = attrs.field(factory=dict, converter=_schema, validator=_check_schema)
    description: str = attrs.field(default="", validator=_text)
    examples: tuple[Any, ...] = attrs.field(default=(), converter=_examples)
    deprecated: bool = attrs.field(default=False, validator=_flag)

    def __attrs_post_init__(self) -> None:
        if not self.examples:
            return
        judge = _Judge(self)
        for index, example in enumerate(self.examples):
            error = judge.error(example)
            if error is not None:
                raise InvalidEventType(
                    f"example {index} of {self.name!r} (version {self.version}) breaks its "
                    f"schema at {error.pointer or '/'} ({error.rule}): {error.problem}"
                )

    @classmethod
    def from_setting(cls, value: Any) -> EventType:
        """A type from one entry of ``THORN_EVENT_TYPES``: a mapping of this class's fields.

        Raises:
            InvalidEventType: not a mapping, no ``name``, or an unknown key.
        """
        if not isinstance(value, Mapping) or "name" not in value:
            raise InvalidEventType(
                f"THORN_EVENT_TYPES entries must be mappings with a 'name', got {value!r}"
            )
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise InvalidEventType(
                f"THORN_EVENT_TYPES entry {value['name']!r} has unknown keys {unknown}; "
                f"known: {sorted(known)}"
            )
        return cls(**value)

    @property
    def key(self) -> tuple[str, str]:
        """``(name, version)``: what identifies a type in the catalog."""
        return (self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the type, as the catalog endpoints and ``thorn catalog`` give it."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "deprecated": self.deprecated,
            "schema": self.schema,
            "examples": list(self.examples),
        }


def _version_key(version: str) -> tuple[Any, ...]:
    """Sort versions naturally: '2' before '10', dates in order."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"[._-]", version)
    )


#: Validation modes of ``THORN_VALIDATE_PAYLOADS``.
MODES = ("raise", "warn", "off")


class Catalog:
    """The event types of one app, by name and version; judges payloads at send.

    A payload is judged against its event's newest version unless the send names one. A
    validator is compiled once per type, on the first payload it judges.
    """

    def __init__(self, owner: object = None) -> None:
        #: The app whose type providers (model events) this catalog reads.
        self._owner = owner
        self._provided = -1
        self._lock = threading.RLock()
        self._types: dict[tuple[str, str], EventType] = {}
        #: Newest version of each name (what a send without a version is judged against).
        self._latest: dict[str, EventType] = {}
        self._judges: dict[tuple[str, str], _Judge] = {}
        #: The keys declared by the settings (``THORN_EVENT_TYPES``), replaced on configure.
        self._configured: set[tuple[str, str]] = set()

    def _sync(self) -> None:
        """Declare the types of the providers added since the last read (model events).

        A provided type that clashes with a declared one is logged and left out: the
        declaration made on the app wins.
        """
        generation = _provider_generation
        if generation == self._provided or self._owner is None:
            return
        with self._lock:
            if generation == self._provided:
                return
            self._provided = generation
            for provider in list(_providers):
                try:
                    if not provider.belongs_to(self._owner):
                        continue
                    for event_type in provider.event_types():
                        self._add(event_type)
                except InvalidEventType as exc:
                    logger.warning("Leaving %r out of the event catalog: %s", provider, exc)

    def add(self, event_type: EventType) -> EventType:
        """Add a declared type.

        Raises:
            InvalidEventType: a type with this name and version is declared already
                (unless it is the very same declaration).
        """
        if not isinstance(event_type, EventType):
            raise InvalidEventType(f"not an EventType: {event_type!r}")
        self._sync()
        return self._add(event_type)

    def _add(self, event_type: EventType) -> EventType:
        with self._lock:
            known = self._types.get(event_type.key)
            if known is not None:
                if known == event_type:
                    return known
                raise InvalidEventType(
                    f"event type {event_type.name!r} version {event_type.version} is declared "
                    "twice with different contents; give the new one another version"
                )
            self._types[event_type.key] = event_type
            self._set_latest(event_type)
        return event_type

    def configure(self, declared: Iterable[Any]) -> None:
        """Replace the types the settings declared (``THORN_EVENT_TYPES``): mappings or
        :class:`EventType` objects. Nothing changes when one is refused.

        Raises:
            InvalidEventType: a bad entry, or one clashing with a type declared in code.
        """
        types = [
            entry if isinstance(entry, EventType) else EventType.from_setting(entry)
            for entry in declared
        ]
        with self._lock:
            saved = (dict(self._types), dict(self._latest), set(self._configured))
            for key in self._configured:
                self._types.pop(key, None)
            self._latest = {}
            for kept in self._types.values():
                self._set_latest(kept)
            self._configured = set()
            try:
                for event_type in types:
                    self._add(event_type)
                    self._configured.add(event_type.key)
            except InvalidEventType:
                self._types, self._latest, self._configured = saved
                raise

    def _set_latest(self, event_type: EventType) -> None:
        latest = self._latest.get(event_type.name)
        if latest is None or _version_key(event_type.version) > _version_key(latest.version):
            self._latest[event_type.name] = event_type

    def declare(self, name: str, **options: Any) -> EventType:
        """Build an :class:`EventType` from ``options`` and add it (see :meth:`add`)."""
        return self.add(EventType(name=name, **options))

    def clear(self) -> None:
        """Forget every type (tests, and adapters reloading their settings)."""
        with self._lock:
            self._types.clear()
            self._latest.clear()
            self._judges.clear()
            self._configured.clear()
            self._provided = -1

    def types(self) -> list[EventType]:
        """Every type, sorted by name then version."""
        self._sync()
        return sorted(self._types.values(), key=lambda t: (t.name, _version_key(t.version)))

    def names(self) -> list[str]:
        """Every declared event name, sorted."""
        self._sync()
        return sorted(self._latest)

    def versions(self, name: str) -> list[str]:
        """The declared versions of ``name``, oldest first."""
        return [t.version for t in self.types() if t.name == name]

    def get(self, name: str, version: str | None = None) -> EventType | None:
        """The type of ``name`` at ``version`` (the newest when None), or None if undeclared."""
        self._sync()
        if version is None:
            return self._latest.get(name)
        return self._types.get((name, version))

    def matching(self, pattern: str) -> list[EventType]:
        """The types (every version) a subscription pattern matches, sorted like :meth:`types`.

        Raises:
            InvalidPattern: ``pattern`` is malformed.
        """
        validate_pattern(pattern)
        return [t for t in self.types() if pattern in candidate_patterns(t.name)]

    def __len__(self) -> int:
        self._sync()
        return len(self._types)

    def __contains__(self, name: object) -> bool:
        self._sync()
        return name in self._latest

    def __iter__(self) -> typing.Iterator[EventType]:
        return iter(self.types())

    def check(self, name: str, data: Any, version: str | None = None) -> None:
        """Judge ``data`` against the type of ``name``; an undeclared event passes.

        Raises:
            PayloadValidationError: ``data`` breaks the schema, naming the JSON pointer and
                the rule.
        """
        error = self.error(name, data, version)
        if error is not None:
            raise error

    def error(
        self, name: str, data: Any, version: str | None = None
    ) -> PayloadValidationError | None:
        """How ``data`` breaks the schema of ``name``, or None (also for an undeclared name)."""
        event_type = self.get(name, version)
        if event_type is None:
            return None
        judge = self._judges.get(event_type.key)
        if judge is None or judge.event_type is not event_type:
            judge = self._judges[event_type.key] = _Judge(event_type)
        return judge.error(data)

    def __repr__(self) -> str:
        return f"<Catalog {len(self._types)} event types>"
