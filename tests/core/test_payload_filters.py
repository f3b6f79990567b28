"""Payload filters: every operator, nested paths, arrays, logic, and the errors of bad filters."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import pytest

from thorn_core import InvalidPayloadFilter, InvalidSubscriber, Subscriber
from thorn_core.payload_filters import (
    FIELD_OPERATORS,
    LOGICAL_OPERATORS,
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    accepts_payload,
    compile_filter,
    filter_problem,
    subscriber_filter,
)

ORDER = {
    "amount": 150,
    "currency": "EUR",
    "paid": True,
    "note": None,
    "customer": {"country": "NO", "address": {"city": "Oslo"}},
    "tags": ["gift", "express"],
    "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}],
}

#: A filter, and whether ORDER satisfies it.
TABLE: list[tuple[str, dict[str, Any], bool]] = [
    ("equality", {"currency": "EUR"}, True),
    ("equality-miss", {"currency": "USD"}, False),
    ("$eq", {"amount": {"$eq": 150}}, True),
    ("$eq-int-float", {"amount": {"$eq": 150.0}}, True),
    ("$ne", {"currency": {"$ne": "USD"}}, True),
    ("$ne-miss", {"currency": {"$ne": "EUR"}}, False),
    ("$ne-missing-path", {"coupon": {"$ne": "X"}}, True),
    ("$gt", {"amount": {"$gt": 149}}, True),
    ("$gt-equal", {"amount": {"$gt": 150}}, False),
    ("$gte", {"amount": {"$gte": 150}}, True),
    ("$gte-miss", {"amount": {"$gte": 151}}, False),
    ("$lt", {"amount": {"$lt": 151}}, True),
    ("$lt-equal", {"amount": {"$lt": 150}}, False),
    ("$lte", {"amount": {"$lte": 150}}, True),
    ("$lte-miss", {"amount": {"$lte": 149.5}}, False),
    ("range", {"amount": {"$gte": 100, "$lt": 200}}, True),
    ("range-miss", {"amount": {"$gte": 100, "$lt": 150}}, False),
    ("$gt-strings", {"currency": {"$gt": "EUA"}}, True),
    ("$gt-string-vs-number", {"currency": {"$gt": 1}}, False),
    ("$in", {"currency": {"$in": ["EUR", "NOK"]}}, True),
    ("$in-miss", {"currency": {"$in": ["USD"]}}, False),
    ("$nin", {"currency": {"$nin": ["USD", "GBP"]}}, True),
    ("$nin-miss", {"currency": {"$nin": ["EUR"]}}, False),
    ("$exists", {"note": {"$exists": True}}, True),
    ("$exists-missing", {"coupon": {"$exists": True}}, False),
    ("$exists-false", {"coupon": {"$exists": False}}, True),
    ("$exists-false-present", {"amount": {"$exists": False}}, False),
    ("null", {"note": None}, True),
    ("boolean", {"paid": True}, True),
    ("true-is-not-1", {"paid": 1}, False),
    ("1-is-not-true", {"amount": {"$in": [True]}}, False),
    ("$not-field", {"amount": {"$not": {"$lt": 100}}}, True),
    ("$not-field-miss", {"amount": {"$not": {"$gt": 100}}}, False),
    ("nested-path", {"customer.country": "NO"}, True),
    ("deep-path", {"customer.address.city": "Oslo"}, True),
    ("nested-path-miss", {"customer.address.city": "Bergen"}, False),
    ("path-through-scalar", {"currency.code": {"$exists": True}}, False),
    ("object-equality", {"customer.address": {"city": "Oslo"}}, True),
    ("object-equality-is-exact", {"customer": {"country": "NO"}}, False),
    ("array-contains", {"tags": "gift"}, True),
    ("array-contains-miss", {"tags": "fragile"}, False),
    ("array-equality", {"tags": ["gift", "express"]}, True),
    ("array-contains-$in", {"tags": {"$in": ["fragile", "express"]}}, True),
    ("array-not-contains", {"tags": {"$nin": ["fragile"]}}, True),
    ("array-of-objects", {"items.sku": "B-7"}, True),
    ("array-of-objects-miss", {"items.sku": "C-3"}, False),
    ("array-of-objects-compare", {"items.qty": {"$gte": 2}}, True),
    ("array-index", {"items.0.sku": "A-1"}, True),
    ("array-index-miss", {"items.1.sku": "A-1"}, False),
    ("array-index-out-of-range", {"items.5.sku": {"$exists": True}}, False),
    ("$and", {"$and": [{"amount": {"$gte": 100}}, {"currency": "EUR"}]}, True),
    ("$and-miss", {"$and": [{"amount": {"$gte": 100}}, {"currency": "USD"}]}, False),
    ("$or", {"$or": [{"amount": {"$gte": 1000}}, {"customer.country": "NO"}]}, True),
    ("$or-miss", {"$or": [{"amount": {"$gte": 1000}}, {"customer.country": "SE"}]}, False),
    ("$not", {"$not": {"currency": "USD"}}, True),
    ("$not-miss", {"$not": {"currency": "EUR"}}, False),
    ("several-paths", {"currency": "EUR", "paid": True, "tags": "gift"}, True),
    ("several-paths-miss", {"currency": "EUR", "paid": False}, False),
    ("empty-filter", {}, True),
]


class TestOperators:
    """Each operator, path form and logical combination over one order payload."""

    def test_table_covers_every_operator(self) -> None:
        """Every documented operator appears in the table."""
        used = {key for _, spec, _ in TABLE for key in _keys(spec) if key.startswith("$")}
        assert used == set(FIELD_OPERATORS) | set(LOGICAL_OPERATORS)

    @pytest.mark.parametrize(
        ("spec", "expected"), [row[1:] for row in TABLE], ids=[r[0] for r in TABLE]
    )
    def test_filter(self, spec: dict[str, Any], expected: bool) -> None:
        """The compiled filter accepts the order exactly when the table says so."""
        assert compile_filter(spec)(ORDER) is expected

    def test_payload_that_is_not_an_object(self) -> None:
        """A path in a payload that is a list or a scalar finds nothing there."""
        assert compile_filter({"amount": {"$exists": False}})([1, 2]) is True
        assert compile_filter({"amount": 1})("text") is False

    def test_values_judged_as_the_json_receivers_get(self) -> None:
        """A UUID, datetime or Decimal is compared as the string the JSON codec writes."""
        ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
        payload = {
            "id": ident,
            "at": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "price": decimal.Decimal("9.50"),
        }
        assert compile_filter({"id": str(ident)})(payload)
        assert compile_filter({"at": {"$gte": "2026-01-01"}})(payload)
        assert compile_filter({"price": "9.50"})(payload)
        assert not compile_filter({"price": {"$gt": 1}})(payload)

    def test_tuples_are_arrays(self) -> None:
        """A tuple in the payload is an array, as the JSON codec writes it."""
        assert compile_filter({"tags": "b"})({"tags": ("a", "b")})
        assert compile_filter({"tags": ["a", "b"]})({"tags": ("a", "b")})

    def test_nan_satisfies_no_ordering(self) -> None:
        """A NaN in the payload is neither above nor below anything."""
        spec = {"$or": [{"x": {"$gt": 0}}, {"x": {"$lte": 0}}]}
        assert not compile_filter(spec)({"x": float("nan")})


class TestCompiling:
    """A filter is compiled once and shared; the caller's dict cannot change it later."""

    def test_same_filter_compiled_once(self) -> None:
        """Two equal filters, keys in any order, give the same compiled object."""
        first = compile_filter({"a": 1, "b": {"$gt": 2}})
        assert compile_filter({"b": {"$gt": 2}, "a": 1}) is first
        assert first.text == '{"a":1,"b":{"$gt":2}}'

    def test_mutating_the_spec_afterwards_changes_nothing(self) -> None:
        """The compiled filter holds its own copy of the operands."""
        spec: dict[str, Any] = {"currency": {"$in": ["EUR"]}}
        compiled = compile_filter(spec)
        spec["currency"]["$in"].append("USD")
        assert not compiled({"currency": "USD"})

    def test_kept_per_subscriber_until_the_filter_changes(self) -> None:
        """By uuid, an unchanged filter is the same compiled object; an edited one (even
        ``1`` for ``true``) is compiled anew."""
        key = uuid.uuid4()
        first = subscriber_filter(key, {"paid": True})
        assert subscriber_filter(key, {"paid": True}) is first
        edited = subscriber_filter(key, {"paid": 1})
        assert edited.text == '{"paid":1}'
        assert not edited({"paid": True})
        assert subscriber_filter(key, {"paid": True})({"paid": True})

    def test_per_subscriber_cache_refuses_bad_filters(self) -> None:
        """A bad filter is refused even for a subscriber whose good one is kept."""
        key = uuid.uuid4()
        subscriber_filter(key, {"id": "x"})
        with pytest.raises(InvalidPayloadFilter):
            subscriber_filter(key, {"id": uuid.uuid4()})

    def test_accepts_payload_of_a_subscriber(self) -> None:
        """A subscriber without a filter accepts everything; one with applies it."""
        plain = Subscriber(url="https://example.com/hook")
        large = Subscriber(url="https://example.com/hook", filter={"amount": {"$gte": 100}})
        assert accepts_payload(plain, {"amount": 1})
        assert accepts_payload(large, {"amount": 100})
        assert not accepts_payload(large, {"amount": 99})


#: A bad filter, the JSON pointer of its error, and a fragment of the message.
BAD: list[tuple[str, Any, str, str]] = [
    ("unknown-operator", {"amount": {"$gtee": 1}}, "/amount/$gtee", "unknown operator '$gtee'"),
    ("unknown-logical", {"$nor": []}, "/$nor", "unknown operator '$nor'"),
    ("field-op-at-top", {"$gt": 1}, "/$gt", "it applies to a path"),
    ("in-not-array", {"a": {"$in": "EUR"}}, "/a/$in", "$in takes an array"),
    ("nin-not-array", {"a": {"$nin": 3}}, "/a/$nin", "$nin takes an array"),
    ("gt-object", {"a": {"$gt": {"x": 1}}}, "/a/$gt", "$gt takes a number or a string"),
    ("gte-bool", {"a": {"$gte": True}}, "/a/$gte", "a boolean"),
    ("lt-null", {"a": {"$lt": None}}, "/a/$lt", "got null"),
    ("exists-not-bool", {"a": {"$exists": 1}}, "/a/$exists", "$exists takes true or false"),
    ("not-plain-value", {"a": {"$not": 3}}, "/a/$not", "object of operators"),
    ("not-field-object", {"a": {"$not": {"b": 1}}}, "/a/$not", "object of operators"),
    ("or-empty", {"$or": []}, "/$or", "non-empty array"),
    ("and-object", {"$and": {"a": 1}}, "/$and", "non-empty array"),
    ("or-item-not-object", {"$or": [{"a": 1}, 2]}, "/$or/1", "expected a filter object"),
    ("deep-error", {"$or": [{"$and": [{"a": {"$bad": 1}}]}]}, "/$or/0/$and/0/a/$bad", "$bad"),
    ("top-not-object", {"$not": [1]}, "/$not", "expected a filter object"),
    ("mixed", {"a": {"$gt": 1, "b": 2}}, "/a", "mixes operators and fields"),
    ("empty-segment", {"a..b": 1}, "/a..b", "empty segment"),
    ("leading-dot", {".a": 1}, "/.a", "empty segment"),
    ("pointer-escaped", {"a/b~c": {"$x": 1}}, "/a~1b~0c/$x", "unknown operator"),
    ("not-an-object", [{"a": 1}], "", "a JSON object, not an array"),
    ("string", '{"a": 1}', "", "not a string"),
    ("nan", {"a": float("nan")}, "", "only JSON values"),
    ("set", {"a": {"$in": {1, 2}}}, "", "only JSON values"),
    ("non-string-key", {1: 2}, "", "only JSON values"),
]


class TestBadFilters:
    """A bad filter is refused with the JSON pointer of the offending part."""

    @pytest.mark.parametrize(
        ("spec", "path", "fragment"), [r[1:] for r in BAD], ids=[r[0] for r in BAD]
    )
    def test_refused_with_its_path(self, spec: Any, path: str, fragment: str) -> None:
        """``InvalidPayloadFilter`` carries the pointer and a message naming the problem."""
        with pytest.raises(InvalidPayloadFilter) as caught:
            compile_filter(spec)
        assert caught.value.path == path
        assert fragment in str(caught.value)
        assert filter_problem(spec) == str(caught.value)

    def test_message_lists_the_operators(self) -> None:
        """An unknown operator's message names the ones that exist."""
        message = filter_problem({"a": {"$regex": "x"}})
        assert message is not None
        assert "at /a/$regex" in message
        assert all(op in message for op in FIELD_OPERATORS)

    def test_too_deep(self) -> None:
        """A filter nested past MAX_FILTER_DEPTH is refused before any recursion."""
        spec: Any = {"a": 1}
        for _ in range(MAX_FILTER_DEPTH):
            spec = {"$not": spec}
        with pytest.raises(InvalidPayloadFilter, match="levels deep"):
            compile_filter(spec)
        very_deep: Any = 1
        for _ in range(100_000):
            very_deep = [very_deep]
        with pytest.raises(InvalidPayloadFilter, match="levels deep"):
            compile_filter({"a": very_deep})

    def test_too_long(self) -> None:
        """A filter longer than MAX_FILTER_LENGTH characters of JSON is refused."""
        spec = {"a": {"$in": ["x" * 100] * (MAX_FILTER_LENGTH // 100)}}
        with pytest.raises(InvalidPayloadFilter, match=f"at most {MAX_FILTER_LENGTH}"):
            compile_filter(spec)

    def test_valid_filter_has_no_problem(self) -> None:
        """``filter_problem`` is None for a good filter."""
        assert filter_problem({"amount": {"$gte": 100}}) is None

    def test_subscriber_refuses_a_bad_filter(self) -> None:
        """A Subscriber with a bad filter is an InvalidSubscriber naming the path."""
        with pytest.raises(InvalidSubscriber, match=r"at /amount/\$gtee"):
            Subscriber(url="https://example.com/hook", filter={"amount": {"$gtee": 1}})

    def test_subscriber_refuses_a_bad_version(self) -> None:
        """A version pin is a non-empty name without whitespace."""
        for bad in ("", "1 0", 2):
            with pytest.raises(InvalidSubscriber, match="version"):
                Subscriber(url="https://example.com/hook", version=bad)  # type: ignore[arg-type]


class TestSubscriberFields:
    """``filter`` and ``version`` on the Subscriber value."""

    def test_round_trip(self) -> None:
        """as_dict and from_dict keep the filter and the version pin."""
        subscriber = Subscriber(
            url="https://example.com/hook", filter={"amount": {"$gte": 100}}, version="2"
        )
        data = subscriber.as_dict()
        assert data["filter"] == {"amount": {"$gte": 100}}
        assert data["version"] == "2"
        assert Subscriber.from_dict(data) == subscriber

    def test_unset_fields_are_left_out(self) -> None:
        """A subscriber without them writes neither key (what an older Thorn reads)."""
        data = Subscriber(url="https://example.com/hook").as_dict()
        assert "filter" not in data
        assert "version" not in data

    def test_hashable_with_a_filter(self) -> None:
        """A subscriber with a filter (a dict) is still hashable."""
        subscriber = Subscriber(url="https://example.com/hook", filter={"a": 1})
        assert subscriber in {subscriber}


def _keys(spec: Any) -> list[str]:
    """Every object key in ``spec``, recursively."""
    if isinstance(spec, dict):
        return [k for key, value in spec.items() for k in (key, *_keys(value))]
    if isinstance(spec, list):
        return [k for item in spec for k in _keys(item)]
    return []
