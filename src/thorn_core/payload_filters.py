"""Payload filters: a subscription's JSON filter (``{"amount": {"$gte": 100}}``), compiled
once into a predicate over the payload, so a subscriber receives only the sends it asked for.

A filter is a JSON object. Its keys are dotted paths into the payload (``"customer.country"``)
or the logical operators ``$and``, ``$or`` (lists of filters) and ``$not`` (one filter); the
value at a path is either a JSON value (equality) or an object of operators: ``$eq``,
``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``, ``$nin``, ``$exists`` and ``$not``
(an object of operators). A path crosses arrays: ``"items.sku"`` reads the ``sku`` of every
item, ``"items.0.sku"`` the first one's; a condition holds when any value at the path (or any
element of an array there) satisfies it, so ``{"tags": "urgent"}`` means "tags contains
urgent". ``$ne``, ``$nin`` and ``$not`` are the negations of ``$eq``, ``$in`` and their
operand, so they also hold where the path is missing.

Values are judged as the JSON a receiver gets: a UUID, date, time, datetime or Decimal is
the string Thorn's JSON codec writes, so ``$gt`` on a Decimal compares strings.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from .codecs import json_default
from .exceptions import InvalidPayloadFilter, SerializationError

if TYPE_CHECKING:
    from .subscribers import Subscriber

__all__ = [
    "FIELD_OPERATORS",
    "LOGICAL_OPERATORS",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "PayloadFilter",
    "accepts_payload",
    "compile_filter",
    "filter_problem",
    "subscriber_filter",
]

#: Operators allowed in the object of operators under a path.
FIELD_OPERATORS: Final = (
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$not",
)
#: Operators allowed where paths are (at the top of a filter and in ``$and``/``$or``/``$not``).
LOGICAL_OPERATORS: Final = ("$and", "$or", "$not")
#: Deepest nesting of objects and arrays a filter may have.
MAX_FILTER_DEPTH: Final = 16
#: Longest filter, in characters of compact JSON (it is stored with the subscription).
MAX_FILTER_LENGTH: Final = 4096
#: Compiled filters kept, by their canonical JSON (subscribers sharing a filter share one).
_CACHED_FILTERS: Final = 4096
#: Subscribers whose compiled filter is kept by uuid (the cache starts over past this).
_CACHED_SUBSCRIBERS: Final = 65536

Predicate = Callable[[Any], bool]
_NUMBERS = (int, float)
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), dict, list})


@attrs.frozen
class PayloadFilter:
    """A compiled filter: call it with a payload to know whether the subscriber wants it."""

    #: The filter as canonical JSON text (sorted keys, compact): its identity.
    text: str
    _test: Predicate = attrs.field(alias="test", repr=False, eq=False)

    def __call__(self, payload: Any) -> bool:
        """Whether ``payload`` (the data of a send) satisfies the filter."""
        return self._test(payload)


def compile_filter(spec: object) -> PayloadFilter:
    """The compiled form of the filter ``spec``; compiled once per distinct filter (cached
    by its canonical JSON text).

    Raises:
        InvalidPayloadFilter: ``spec`` is not a filter; ``path`` is the JSON pointer of the
            offending part (``/amount/$gtee``).
    """
    return _compile_text(canonical_text(spec))


def canonical_text(spec: object) -> str:
    """``spec`` as compact JSON with sorted keys, after checking its shape and size.

    Raises:
        InvalidPayloadFilter: ``spec`` is not a JSON object, too deep, too long, or holds a
            value JSON has no form for.
    """
    if not isinstance(spec, Mapping):
        raise InvalidPayloadFilter(f"a filter is a JSON object, not {_kind(spec)}", "")
    _check_shape(spec)
    try:
        text = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidPayloadFilter(f"a filter holds only JSON values: {exc}", "") from None
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidPayloadFilter(
            f"a filter is at most {MAX_FILTER_LENGTH} characters of JSON, this one {len(text)}",
            "",
        )
    return text


def filter_problem(spec: object) -> str | None:
    """Why ``spec`` is not a filter (the message names the JSON pointer), or None if it is."""
    try:
        compile_filter(spec)
    except InvalidPayloadFilter as exc:
        return str(exc)
    return None


def accepts_payload(subscriber: Subscriber, payload: Any) -> bool:
    """Whether ``subscriber``'s filter (if it has one) lets ``payload`` through."""
    spec = subscriber.filter
    return spec is None or subscriber_filter(subscriber.uuid, spec)(payload)


#: By subscriber uuid: the filter as compiled (a private copy) and its compiled form.
_by_subscriber: dict[Any, tuple[Any, PayloadFilter]] = {}


def subscriber_filter(key: Any, spec: object) -> PayloadFilter:
    """The compiled filter ``spec`` of the subscriber ``key`` (its uuid).

    Stored subscribers are read again for every send; kept by uuid and compared with what
    was compiled, a filter is neither checked nor serialized again while it is unchanged
    (an edited filter compares unequal and is compiled anew).

    Raises:
        InvalidPayloadFilter: ``spec`` is not a filter.
    """
    known = _by_subscriber.get(key)
    if known is not None and _same_spec(spec, known[0]):
        return known[1]
    compiled = compile_filter(spec)
    if len(_by_subscriber) >= _CACHED_SUBSCRIBERS:
        _by_subscriber.clear()
    _by_subscriber[key] = (json.loads(compiled.text), compiled)
    return compiled


@functools.lru_cache(maxsize=_CACHED_FILTERS)
def _compile_text(text: str) -> PayloadFilter:
    """Compile the canonical JSON ``text`` of a filter (parsed again, so nothing the caller
    holds can change the compiled filter)."""
    return PayloadFilter(text, _filter(json.loads(text), ""))


def _check_shape(spec: object) -> None:
    """Refuse a filter nested deeper than :data:`MAX_FILTER_DEPTH` (before any recursion),
    or with a key that is not a string (JSON would quietly make it one)."""
    level: list[object] = [spec]
    depth = 0
    while level:
        depth += 1
        if depth > MAX_FILTER_DEPTH:
            raise InvalidPayloadFilter(
                f"a filter is nested at most {MAX_FILTER_DEPTH} levels deep", ""
            )
        following: list[object] = []
        for value in level:
            if isinstance(value, Mapping):
                for key in value:
                    if not isinstance(key, str):
                        raise InvalidPayloadFilter(
                            f"a filter holds only JSON values: a key is a string, not {key!r}", ""
                        )
                following.extend(value.values())
            elif isinstance(value, (list, tuple)):
                following.extend(value)
        level = following


def _pointer(path: str, key: str | int) -> str:
    """``path`` (a JSON pointer) followed by ``key``, escaped as RFC 6901 says."""
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _kind(value: object) -> str:
    """The JSON name of ``value``'s kind, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, _NUMBERS):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


def _is_operators(value: object) -> bool:
    """Whether ``value`` is an object of operators (some key starts with ``$``)."""
    return isinstance(value, Mapping) and any(str(key).startswith("$") for key in value)


def _same_spec(given: object, compiled: object) -> bool:
    """Whether ``given`` is the filter ``compiled`` (parsed JSON) was made from: the same
    JSON types and values (``1`` is not ``true``, nor a tuple a list)."""
    if type(given) is not type(compiled):
        return (
            isinstance(given, Mapping)
            and isinstance(compiled, dict)
            and _same_spec(dict(given), compiled)
        )
    if isinstance(compiled, dict):
        assert isinstance(given, dict)
        return given.keys() == compiled.keys() and all(
            _same_spec(given[key], value) for key, value in compiled.items()
        )
    if isinstance(compiled, list):
        assert isinstance(given, list)
        return len(given) == len(compiled) and all(
            _same_spec(a, b) for a, b in zip(given, compiled, strict=True)
        )
    return bool(given == compiled)


# Compiling: each function returns a predicate over the payload (or, for field conditions,
# over the list of values found at a path).


def _filter(spec: Any, path: str) -> Predicate:
    """A filter object: every path condition and logical operator must hold."""
    if not isinstance(spec, Mapping):
        raise InvalidPayloadFilter(f"expected a filter object, got {_kind(spec)}", path)
    tests: list[Predicate] = []
    for key, value in spec.items():
        here = _pointer(path, key)
        if key.startswith("$"):
            tests.append(_logical(key, value, here))
        else:
            tests.append(_field(key, value, here))
    return _all(tests)


def _logical(operator: str, operand: Any, path: str) -> Predicate:
    """``$and``/``$or`` over a non-empty list of filters, ``$not`` of one filter."""
    if operator == "$not":
        inner = _filter(operand, path)
        return lambda payload: not inner(payload)
    if operator not in LOGICAL_OPERATORS:
        hint = ' (it applies to a path: {"path": {...}})' if operator in FIELD_OPERATORS else ""
        raise InvalidPayloadFilter(
            f"unknown operator {operator!r} where paths are{hint}; "
            f"use a path or one of {', '.join(LOGICAL_OPERATORS)}",
            path,
        )
    if not isinstance(operand, list) or not operand:
        raise InvalidPayloadFilter(
            f"{operator} takes a non-empty array of filters, got {_kind(operand)}", path
        )
    tests = [_filter(item, _pointer(path, index)) for index, item in enumerate(operand)]
    if operator == "$and":
        return _all(tests)
    return lambda payload: any(test(payload) for test in tests)


def _all(tests: list[Predicate]) -> Predicate:
    """A predicate that holds when every one of ``tests`` does (the common cases unrolled)."""
    if not tests:
        return lambda payload: True
    if len(tests) == 1:
        return tests[0]
    return lambda payload: all(test(payload) for test in tests)


def _field(key: str, condition: Any, path: str) -> Predicate:
    """The condition on the values at the dotted path ``key``."""
    segments = key.split(".")
    if "" in segments:
        raise InvalidPayloadFilter(f"the path {key!r} has an empty segment", path)
    test = _condition(condition, path)
    if len(segments) == 1:
        name = segments[0]
        return lambda payload: test(_values_at(payload, name))
    return lambda payload: test(_values_at_path(payload, segments))


def _condition(condition: Any, path: str) -> Callable[[list[Any]], bool]:
    """A field condition: a JSON value (equality) or an object of operators (all must hold)."""
    if not _is_operators(condition):
        return _positive(_equals(condition))
    if any(not str(key).startswith("$") for key in condition):
        raise InvalidPayloadFilter(
            'an object mixes operators and fields; write {"a.b": ...} for a nested path',
            path,
        )
    tests = [_operator(name, operand, _pointer(path, name)) for name, operand in condition.items()]
    if len(tests) == 1:
        return tests[0]
    return lambda values: all(test(values) for test in tests)


def _operator(name: str, operand: Any, path: str) -> Callable[[list[Any]], bool]:
    """One operator of a field condition, over the values found at the path."""
    if name in ("$eq", "$ne"):
        equal = _positive(_equals(operand))
        return equal if name == "$eq" else _negated(equal)
    if name in ("$gt", "$gte", "$lt", "$lte"):
        return _positive(_ordering(name, operand, path))
    if name in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise InvalidPayloadFilter(
                f"{name} takes an array of values, got {_kind(operand)}", path
            )
        tests = [_equals(item) for item in operand]
        found = _positive(lambda value: any(test(value) for test in tests))
        return found if name == "$in" else _negated(found)
    if name == "$exists":
        if not isinstance(operand, bool):
            raise InvalidPayloadFilter(f"$exists takes true or false, got {_kind(operand)}", path)
        return (lambda values: bool(values)) if operand else (lambda values: not values)
    if name == "$not":
        if not _is_operators(operand):
            raise InvalidPayloadFilter(
                f"$not under a path takes an object of operators, got {_kind(operand)}", path
            )
        return _negated(_condition(operand, path))
    raise InvalidPayloadFilter(
        f"unknown operator {name!r}; use one of {', '.join(FIELD_OPERATORS)}", path
    )


def _ordering(name: str, operand: Any, path: str) -> Callable[[Any], bool]:
    """``$gt``/``$gte``/``$lt``/``$lte``: numbers compare with numbers, strings with strings;
    a value of another kind never satisfies them."""
    if isinstance(operand, bool) or not isinstance(operand, (*_NUMBERS, str)):
        raise InvalidPayloadFilter(f"{name} takes a number or a string, got {_kind(operand)}", path)
    if isinstance(operand, str):

        def comparable(value: Any) -> bool:
            return isinstance(value, str)

    else:

        def comparable(value: Any) -> bool:
            return (
                isinstance(value, _NUMBERS)
                and not isinstance(value, bool)
                and not (isinstance(value, float) and math.isnan(value))
            )

    if name == "$gt":
        return lambda value: comparable(value) and value > operand
    if name == "$gte":
        return lambda value: comparable(value) and value >= operand
    if name == "$lt":
        return lambda value: comparable(value) and value < operand
    return lambda value: comparable(value) and value <= operand


def _positive(test: Callable[[Any], bool]) -> Callable[[list[Any]], bool]:
    """A condition that holds when any value at the path, or any element of an array
    there, passes ``test`` (so equality with a scalar means "contains" for arrays)."""

    def check(values: list[Any]) -> bool:
        for value in values:
            value = _plain(value)
            if test(value):
                return True
            if isinstance(value, (list, tuple)) and any(test(_plain(item)) for item in value):
                return True
        return False

    return check


def _negated(test: Callable[[list[Any]], bool]) -> Callable[[list[Any]], bool]:
    return lambda values: not test(values)


def _equals(expected: Any) -> Callable[[Any], bool]:
    """Equality as JSON defines it (``true`` is not ``1``; ``1`` is ``1.0``)."""
    return lambda value: _json_equal(value, expected)


def _json_equal(value: Any, expected: Any) -> bool:
    value = _plain(value)
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(value) is type(expected) and value == expected
    if isinstance(expected, Mapping):
        return (
            isinstance(value, Mapping)
            and len(value) == len(expected)
            and all(
                key in value and _json_equal(value[key], item) for key, item in expected.items()
            )
        )
    if isinstance(expected, list):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(expected)
            and all(_json_equal(a, b) for a, b in zip(value, expected, strict=True))
        )
    if expected is None or isinstance(expected, str):
        return bool(value == expected)
    return isinstance(value, _NUMBERS) and bool(value == expected)


def _plain(value: Any) -> Any:
    """``value`` as the JSON codec writes it: a UUID, date or Decimal becomes its string."""
    if type(value) in _PLAIN_TYPES or isinstance(value, (Mapping, list, tuple)):
        return value
    try:
        return json_default(value)
    except SerializationError:  # the send itself refuses it; here it equals nothing
        return value


# Reading paths.


def _values_at(payload: Any, segment: str) -> list[Any]:
    """The values one path segment names in ``payload``: a key of an object, an index of an
    array, or the key in every object of an array."""
    if isinstance(payload, Mapping):
        return [payload[segment]] if segment in payload else []
    if isinstance(payload, (list, tuple)):
        if segment.isdecimal() and segment.isascii():
            index = int(segment)
            return [payload[index]] if index < len(payload) else []
        return [item[segment] for item in payload if isinstance(item, Mapping) and segment in item]
    return []


def _values_at_path(payload: Any, segments: Sequence[str]) -> list[Any]:
    """The values the dotted path ``segments`` names in ``payload`` (arrays crossed)."""
    values = [payload]
    for segment in segments:
        found: list[Any] = []
        for value in values:
            found.extend(_values_at(value, segment))
        if not found:
            return found
        values = found
    return values
