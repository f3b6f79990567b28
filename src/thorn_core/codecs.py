"""Payload codecs: turn event data into request bytes, one codec per content type."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import sys
import uuid
from collections.abc import Iterable, Mapping
from typing import Protocol
from urllib.parse import urlencode

import attrs

from thorn_core.exceptions import ImproperlyConfigured, SerializationError
from thorn_core.signing import _import_string

__all__ = [
    "FORM_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "Codec",
    "FormCodec",
    "JSONCodec",
    "build_codecs",
    "check_json",
    "default_codecs",
    "json_default",
]

JSON_CONTENT_TYPE = "application/json"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

#: Lazy (translatable) string classes, by the module that defines them. Only modules that
#: are already imported are looked at, so detecting them never imports a framework.
_LAZY_STRING_CLASSES: tuple[tuple[str, str], ...] = (
    ("django.utils.functional", "Promise"),
    ("flask_babel.speaklater", "LazyString"),
    ("speaklater", "_LazyString"),
)


class Codec(Protocol):
    """Encodes event data for one content type; registered through ``THORN_CODECS``.

    Implemented by :class:`JSONCodec`, :class:`FormCodec` and user codecs.
    """

    @property
    def content_type(self) -> str:
        """The media type this codec produces, e.g. ``application/json``."""
        ...

    def encode(self, data: object) -> bytes:
        """Return ``data`` as request body bytes.

        Raises:
            SerializationError: if ``data`` cannot be encoded; the message names the type.
        """
        ...


def _lazy_string_types() -> tuple[type, ...]:
    """Return the lazy string classes of the translation libraries imported so far."""
    found: list[type] = []
    for module_name, class_name in _LAZY_STRING_CLASSES:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def _type_name(obj: object) -> str:
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def json_default(obj: object) -> object:
    """Convert a value JSON cannot encode natively to one it can.

    datetime, date and time become ISO 8601 strings (with their UTC offset, if any);
    Decimal and UUID become strings; lazy translation strings (Django, Flask-Babel,
    speaklater) become ``str``. Sets are refused rather than given an arbitrary order.

    Raises:
        SerializationError: for any other type; the message names it.
    """
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, (decimal.Decimal, uuid.UUID)):
        return str(obj)
    lazy_types = _lazy_string_types()
    if lazy_types and isinstance(obj, lazy_types):
        return str(obj)
    raise SerializationError(
        f"Object of type {_type_name(obj)!r} is not JSON serializable; convert it to a "
        "str, number, bool, None, list or dict first, or register a codec in THORN_CODECS"
    )


_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=json_default
)
_SCALARS = (str, int, float, type(None))
#: Exact types a check passes at a glance (floats are looked at for NaN).
_PLAIN = frozenset({str, int, bool, type(None)})
_NOT_FINITE = "cannot encode payload as JSON: NaN and Infinity have no JSON form"
_TOO_DEEP = "cannot encode payload as JSON: it is nested too deeply"


def _dumps(data: object) -> str:
    try:
        return _ENCODER.encode(data)
    except SerializationError:
        raise
    except RecursionError as exc:
        raise SerializationError(_TOO_DEEP) from exc
    except (TypeError, ValueError) as exc:
        # Circular references and NaN/Infinity (ValueError), non-string dict keys (TypeError).
        if "Out of range float" in str(exc):
            raise SerializationError(_NOT_FINITE) from exc
        raise SerializationError(f"cannot encode payload as JSON: {exc}") from exc


#: Nesting past which :func:`check_json` leaves the verdict to the encoder itself: circular
#: payloads nest without end, and payloads this deep are too rare to be worth a second walk.
_CHECKED_DEPTH = 64


class _TooDeep(Exception):
    """The check went past ``_CHECKED_DEPTH``: the encoder decides."""


def _check_key(key: object) -> None:
    """Refuse a dict key the encoder refuses (only non-``str`` keys get here)."""
    if not isinstance(key, _SCALARS):
        raise SerializationError(
            "cannot encode payload as JSON: keys must be str, int, float, bool or "
            f"None, not {_type_name(key)}"
        )
    if isinstance(key, float) and not math.isfinite(key):
        raise SerializationError(_NOT_FINITE)


def _check(value: object, depth: int) -> None:
    # Scalars are skipped inline, exact types by a set lookup: a payload is mostly scalars,
    # and a call per value would cost more than the check itself.
    kind = type(value)
    if kind is dict or kind is list or isinstance(value, (dict, list, tuple)):
        if depth > _CHECKED_DEPTH:
            raise _TooDeep
        items: Iterable[object] = value  # type: ignore[assignment]
        if kind is dict:
            for key in value:  # type: ignore[attr-defined]
                if type(key) is not str:
                    _check_key(key)
            items = value.values()  # type: ignore[attr-defined]
        elif isinstance(value, dict):
            # A subclass: the encoder reads it through items(), which it may override.
            pairs = list(value.items())
            for key, _ in pairs:
                if type(key) is not str:
                    _check_key(key)
            items = [item for _, item in pairs]
        for item in items:
            kind = type(item)
            if kind in _PLAIN:
                continue
            if kind is float:
                if not math.isfinite(item):  # type: ignore[arg-type]
                    raise SerializationError(_NOT_FINITE)
                continue
            _check(item, depth + 1)
    elif not isinstance(value, _SCALARS):
        _check(json_default(value), depth)
    elif isinstance(value, float) and not math.isfinite(value):
        raise SerializationError(_NOT_FINITE)


def check_json(data: object) -> None:
    """Raise exactly when :class:`JSONCodec` would, without building the JSON text.

    ``send()`` with no subscriber still checks its payload this way, at a fraction of the
    cost of encoding it. A payload nested more than 64 levels deep (a circular one always
    is) is encoded instead, so the verdict is the encoder's own.

    Raises:
        SerializationError: naming the type that has no JSON form, a circular reference, or
            nesting too deep to encode.
    """
    try:
        _check(data, 0)
    except _TooDeep:
        _dumps(data)


@attrs.frozen
class JSONCodec:
    """Compact UTF-8 JSON, with the conversions of :func:`json_default`."""

    content_type: str = JSON_CONTENT_TYPE

    #: Raise when :meth:`encode` would, without encoding; see :func:`check_json`.
    check = staticmethod(check_json)

    def encode(self, data: object) -> bytes:
        """Return ``data`` as compact JSON bytes.

        Raises:
            SerializationError: if a value has no JSON form or the data is circular.
        """
        return _dumps(data).encode("utf-8")


def _form_scalar(value: object) -> str | None:
    """Return a scalar as form text, or ``None`` if it is a container."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, (Mapping, list, tuple)):
        return None
    converted = json_default(value)
    return converted if isinstance(converted, str) else _dumps(converted)


def _form_values(value: object) -> list[str]:
    """Return the form texts of one value: one, or one per item of a list of scalars."""
    scalar = _form_scalar(value)
    if scalar is not None:
        return [scalar]
    if isinstance(value, (list, tuple)):
        items = [_form_scalar(item) for item in value]
        if all(item is not None for item in items):
            return [item for item in items if item is not None]
    return [_dumps(value)]


@attrs.frozen
class FormCodec:
    """``application/x-www-form-urlencoded`` for flat mappings.

    The data must be a mapping with string keys. Values are encoded as follows:

    - ``None`` becomes an empty string, ``True``/``False`` become ``true``/``false``,
      other str, int and float values their ``str()``;
    - datetime, Decimal, UUID and lazy strings are converted as for JSON;
    - a list or tuple of such scalars repeats the key once per item (an empty list
      sends no field);
    - a nested mapping, or a list holding a mapping or list, is sent as one field whose
      value is that JSON text.

    Raises:
        SerializationError: if the data is not a mapping, a key is not a string, or a
            value has no encoding.
    """

    content_type: str = FORM_CONTENT_TYPE

    def encode(self, data: object) -> bytes:
        """Return ``data`` as URL-encoded form bytes (ASCII)."""
        if not isinstance(data, Mapping):
            raise SerializationError(
                f"form-urlencoded data must be a mapping, not {_type_name(data)!r}"
            )
        pairs: list[tuple[str, str]] = []
        for key, value in data.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"form-urlencoded keys must be str, not {_type_name(key)!r} ({key!r})"
                )
            pairs.extend((key, text) for text in _form_values(value))
        return urlencode(pairs).encode("ascii")


def default_codecs() -> dict[str, Codec]:
    """Return the built-in codecs by content type: JSON and form-urlencoded."""
    return {JSON_CONTENT_TYPE: JSONCodec(), FORM_CONTENT_TYPE: FormCodec()}


def _resolve_codec(content_type: str, value: object) -> Codec:
    if isinstance(value, str):
        value = _import_string(value, what=f"THORN_CODECS[{content_type!r}]")
    if isinstance(value, type):
        cls = value
        try:
            value = cls()
        except TypeError as exc:
            raise ImproperlyConfigured(
                f"THORN_CODECS[{content_type!r}]: cannot instantiate {cls.__qualname__} "
                f"with no arguments: {exc}"
            ) from exc
    if not callable(getattr(value, "encode", None)):
        raise ImproperlyConfigured(
            f"THORN_CODECS[{content_type!r}] is not a codec: "
            f"{_type_name(value)!r} has no encode(data) method"
        )
    return value  # type: ignore[return-value]  # duck-typed: encode() is what is checked


def build_codecs(overrides: Mapping[str, Codec | str] | None = None) -> dict[str, Codec]:
    """Return the default codecs with ``THORN_CODECS`` merged over them.

    Args:
        overrides: content type -> codec instance, codec class, or ``"module:attr"``
            naming either (a class is instantiated with no arguments). An entry for a
            built-in content type replaces the built-in codec.

    Raises:
        ImproperlyConfigured: if an entry cannot be imported or is not a codec.
    """
    codecs = default_codecs()
    for content_type, value in (overrides or {}).items():
        codecs[content_type] = _resolve_codec(content_type, value)
    return codecs
