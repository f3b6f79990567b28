"""Tests for thorn_core.codecs: JSON and form encoding, and THORN_CODECS resolution."""

from __future__ import annotations

import datetime
import decimal
import sys
import types
import uuid
from urllib.parse import parse_qsl

import attrs
import pytest

from thorn_core.codecs import (
    FORM_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    Codec,
    FormCodec,
    JSONCodec,
    build_codecs,
    check_json,
    default_codecs,
    json_default,
)
from thorn_core.exceptions import ImproperlyConfigured, SerializationError

UTC = datetime.timezone.utc
PLUS_2 = datetime.timezone(datetime.timedelta(hours=2))
SOME_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def register_lazy_class(monkeypatch: pytest.MonkeyPatch, module_name: str, class_name: str) -> type:
    """Install a fake translation module in sys.modules holding a lazy string class."""

    class Lazy:
        def __init__(self, text: str) -> None:
            self.text = text

        def __str__(self) -> str:
            return self.text.upper()

    module = types.ModuleType(module_name)
    setattr(module, class_name, Lazy)
    monkeypatch.setitem(sys.modules, module_name, module)
    return Lazy


class TestJSONCodec:
    """Compact JSON with conversions for common Python types."""

    def test_content_type(self) -> None:
        """The JSON codec produces application/json."""
        assert JSONCodec().content_type == JSON_CONTENT_TYPE == "application/json"

    def test_compact_utf8(self) -> None:
        """Output has no spaces and keeps non-ASCII text as UTF-8."""
        data = {"a": [1, 2.5, True, None], "b": "café ☕"}
        assert JSONCodec().encode(data) == '{"a":[1,2.5,true,null],"b":"café ☕"}'.encode()

    def test_tuple_is_a_list(self) -> None:
        """Tuples are native JSON arrays."""
        assert JSONCodec().encode({"t": (1, "x")}) == b'{"t":[1,"x"]}'

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (datetime.datetime(2024, 5, 17, 9, 30, 1, 250000), b'"2024-05-17T09:30:01.250000"'),
            (datetime.datetime(2024, 5, 17, 9, 30, tzinfo=UTC), b'"2024-05-17T09:30:00+00:00"'),
            (datetime.datetime(2024, 5, 17, 9, 30, tzinfo=PLUS_2), b'"2024-05-17T09:30:00+02:00"'),
            (datetime.date(2024, 2, 29), b'"2024-02-29"'),
            (datetime.time(23, 59, 58), b'"23:59:58"'),
            (datetime.time(8, 0, tzinfo=PLUS_2), b'"08:00:00+02:00"'),
            (decimal.Decimal("10.50"), b'"10.50"'),
            (decimal.Decimal("-1E+3"), b'"-1E+3"'),
            (SOME_UUID, b'"12345678-1234-5678-1234-567812345678"'),
        ],
    )
    def test_conversions(self, value: object, expected: bytes) -> None:
        """datetime, date, time, Decimal and UUID become the exact strings shown."""
        assert JSONCodec().encode(value) == expected
        assert JSONCodec().encode({"v": [value]}) == b'{"v":[' + expected + b"]}"

    @pytest.mark.parametrize(
        ("module_name", "class_name"),
        [
            ("django.utils.functional", "Promise"),
            ("flask_babel.speaklater", "LazyString"),
            ("speaklater", "_LazyString"),
        ],
    )
    def test_lazy_strings(
        self, monkeypatch: pytest.MonkeyPatch, module_name: str, class_name: str
    ) -> None:
        """A lazy string of an imported translation library is encoded with str()."""
        lazy = register_lazy_class(monkeypatch, module_name, class_name)
        assert JSONCodec().encode({"title": lazy("hello")}) == b'{"title":"HELLO"}'

    def test_lazy_string_module_not_imported(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without the library in sys.modules, an object of that shape is not special."""
        lazy = register_lazy_class(monkeypatch, "django.utils.functional", "Promise")
        monkeypatch.delitem(sys.modules, "django.utils.functional")
        with pytest.raises(SerializationError, match="Lazy"):
            JSONCodec().encode(lazy("hello"))

    def test_unserializable_object_names_its_type(self) -> None:
        """An unknown object raises SerializationError naming its type."""
        with pytest.raises(SerializationError, match="Object of type 'object' is not JSON"):
            JSONCodec().encode({"x": object()})

    def test_user_class_is_named_with_module(self) -> None:
        """A user class is named with its module so it can be found."""

        class Article:
            pass

        with pytest.raises(SerializationError, match=r"test_codecs\..*Article"):
            JSONCodec().encode([Article()])

    @pytest.mark.parametrize("value", [{1, 2}, frozenset({"a"}), b"bytes"])
    def test_sets_and_bytes_are_refused(self, value: object) -> None:
        """Sets (no order) and bytes (no text form) are refused, not guessed at."""
        with pytest.raises(SerializationError, match=type(value).__name__):
            JSONCodec().encode({"v": value})

    def test_serialization_error_is_a_type_error(self) -> None:
        """SerializationError stays catchable as TypeError, like json's own error."""
        with pytest.raises(TypeError):
            JSONCodec().encode(object())

    def test_circular_reference(self) -> None:
        """A circular structure raises SerializationError, not ValueError."""
        data: list[object] = []
        data.append(data)
        with pytest.raises(SerializationError, match=r"[Cc]ircular"):
            JSONCodec().encode(data)

    def test_non_string_key(self) -> None:
        """A dict key JSON cannot hold raises SerializationError."""
        with pytest.raises(SerializationError, match="keys must be"):
            JSONCodec().encode({(1, 2): "x"})

    def test_custom_content_type(self) -> None:
        """The content type can be set for JSON-based media types."""
        codec = JSONCodec(content_type="application/cloudevents+json")
        assert codec.content_type == "application/cloudevents+json"
        assert codec.encode({"a": 1}) == b'{"a":1}'

    def test_is_frozen(self) -> None:
        """Codecs are immutable values."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            JSONCodec().content_type = "text/plain"  # type: ignore[misc]

    def test_json_default_is_public(self) -> None:
        """json_default converts one value and refuses the rest."""
        assert json_default(SOME_UUID) == str(SOME_UUID)
        with pytest.raises(SerializationError):
            json_default(1j)


class TestFormCodec:
    """application/x-www-form-urlencoded encoding."""

    def test_content_type(self) -> None:
        """The form codec produces application/x-www-form-urlencoded."""
        assert FormCodec().content_type == FORM_CONTENT_TYPE

    def test_scalars(self) -> None:
        """Strings, numbers, booleans and None become the exact fields shown."""
        data = {"s": "a b&c", "i": 3, "f": 1.5, "t": True, "n": None, "z": False}
        assert FormCodec().encode(data) == b"s=a+b%26c&i=3&f=1.5&t=true&n=&z=false"

    def test_non_ascii_is_utf8_percent_encoded(self) -> None:
        """Non-ASCII text is percent-encoded as UTF-8; the output is ASCII."""
        assert FormCodec().encode({"name": "café"}) == b"name=caf%C3%A9"

    def test_conversions(self) -> None:
        """datetime, Decimal and UUID values are converted as for JSON."""
        data = {
            "at": datetime.datetime(2024, 5, 17, 9, 30, tzinfo=UTC),
            "price": decimal.Decimal("9.99"),
            "id": SOME_UUID,
        }
        assert FormCodec().encode(data) == (
            b"at=2024-05-17T09%3A30%3A00%2B00%3A00&price=9.99"
            b"&id=12345678-1234-5678-1234-567812345678"
        )

    def test_lazy_string(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A lazy translation string is encoded with str()."""
        lazy = register_lazy_class(monkeypatch, "django.utils.functional", "Promise")
        assert FormCodec().encode({"title": lazy("hi")}) == b"title=HI"

    def test_list_repeats_key(self) -> None:
        """A list or tuple of scalars repeats the key once per item."""
        assert FormCodec().encode({"tag": ["a", 2, None], "x": ("y",)}) == b"tag=a&tag=2&tag=&x=y"

    def test_empty_list_sends_no_field(self) -> None:
        """An empty list sends no field at all, as an HTML form would."""
        assert FormCodec().encode({"tag": [], "a": "1"}) == b"a=1"

    def test_nested_mapping_is_json(self) -> None:
        """A nested mapping is sent as one field holding its JSON text."""
        body = FormCodec().encode({"event": "x", "data": {"n": 1, "l": [1, 2]}})
        assert parse_qsl(body.decode()) == [("event", "x"), ("data", '{"n":1,"l":[1,2]}')]

    def test_list_of_mappings_is_json(self) -> None:
        """A list holding a mapping is sent as one field holding its JSON text."""
        body = FormCodec().encode({"items": [{"id": 1}, {"id": 2}]})
        assert parse_qsl(body.decode()) == [("items", '[{"id":1},{"id":2}]')]

    @pytest.mark.parametrize("data", [["a", "b"], "text", 3, None])
    def test_non_mapping_refused(self, data: object) -> None:
        """Data that is not a mapping raises SerializationError naming its type."""
        with pytest.raises(SerializationError, match="must be a mapping"):
            FormCodec().encode(data)

    def test_non_string_key_refused(self) -> None:
        """A key that is not a string is refused."""
        with pytest.raises(SerializationError, match="keys must be str, not 'int'"):
            FormCodec().encode({1: "a"})

    @pytest.mark.parametrize("value", [object(), {1, 2}, [object()]])
    def test_unserializable_value_refused(self, value: object) -> None:
        """A value with no encoding raises SerializationError naming its type."""
        with pytest.raises(SerializationError, match="Object of type"):
            FormCodec().encode({"v": value})


@attrs.frozen
class UpperCodec:
    """A user codec for the build_codecs tests."""

    content_type: str = "text/plain"

    def encode(self, data: object) -> bytes:
        return str(data).upper().encode()


class NeedsArgs:
    """A codec class that cannot be built without arguments."""

    content_type = "text/plain"

    def __init__(self, level: int) -> None:
        self.level = level

    def encode(self, data: object) -> bytes:
        return b""


@pytest.fixture
def codec_module(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register a throwaway module holding codec classes, an instance and a non-codec."""
    module = types.ModuleType("thorn_test_codecs")
    module.UpperCodec = UpperCodec  # type: ignore[attr-defined]
    module.NeedsArgs = NeedsArgs  # type: ignore[attr-defined]
    module.upper = UpperCodec("text/x-upper")  # type: ignore[attr-defined]
    module.NOT_A_CODEC = 42  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module.__name__


class TestBuildCodecs:
    """Merging THORN_CODECS over the built-in codecs."""

    def test_defaults(self) -> None:
        """The defaults are JSON and form, keyed by content type."""
        codecs = default_codecs()
        assert codecs == {JSON_CONTENT_TYPE: JSONCodec(), FORM_CONTENT_TYPE: FormCodec()}
        assert build_codecs(None) == codecs
        assert build_codecs({}) == codecs

    def test_defaults_are_fresh(self) -> None:
        """Each call returns a new dict, so callers cannot alter the defaults."""
        default_codecs().clear()
        assert len(default_codecs()) == 2

    def test_add_instance(self) -> None:
        """A codec instance adds a content type and keeps the defaults."""
        codec = UpperCodec()
        codecs = build_codecs({"text/plain": codec})
        assert codecs["text/plain"] is codec
        assert set(codecs) == {JSON_CONTENT_TYPE, FORM_CONTENT_TYPE, "text/plain"}

    def test_replace_default(self) -> None:
        """An entry for a built-in content type replaces the built-in codec."""
        codecs = build_codecs({JSON_CONTENT_TYPE: UpperCodec()})
        assert codecs[JSON_CONTENT_TYPE].encode("a") == b"A"
        assert isinstance(codecs[FORM_CONTENT_TYPE], FormCodec)

    def test_class_is_instantiated(self) -> None:
        """A codec class is instantiated with no arguments."""
        codecs = build_codecs({"text/plain": UpperCodec})  # type: ignore[dict-item]
        assert codecs["text/plain"] == UpperCodec()

    def test_import_string_class(self, codec_module: str) -> None:
        """'module:Class' is imported and instantiated."""
        codecs = build_codecs({"text/plain": f"{codec_module}:UpperCodec"})
        assert codecs["text/plain"] == UpperCodec()

    def test_import_string_instance(self, codec_module: str) -> None:
        """'module:instance' is imported and used as is."""
        codecs = build_codecs({"text/x-upper": f"{codec_module}:upper"})
        assert codecs["text/x-upper"] == UpperCodec("text/x-upper")

    def test_builtin_by_import_string(self) -> None:
        """A built-in codec can be named by its import string."""
        codecs = build_codecs({"application/vnd.api+json": "thorn_core.codecs:JSONCodec"})
        assert codecs["application/vnd.api+json"] == JSONCodec()

    def test_not_a_codec_names_content_type(self, codec_module: str) -> None:
        """A value without encode() is refused, naming the content type."""
        with pytest.raises(ImproperlyConfigured, match=r"THORN_CODECS\['text/csv'\].*'int'"):
            build_codecs({"text/csv": f"{codec_module}:NOT_A_CODEC"})

    def test_object_without_encode(self) -> None:
        """A plain object given directly is refused."""
        with pytest.raises(ImproperlyConfigured, match="no encode"):
            build_codecs({"text/csv": object()})  # type: ignore[dict-item]

    def test_class_needing_arguments(self, codec_module: str) -> None:
        """A class that needs constructor arguments is refused with the reason."""
        with pytest.raises(ImproperlyConfigured, match="cannot instantiate NeedsArgs"):
            build_codecs({"text/plain": f"{codec_module}:NeedsArgs"})

    def test_missing_module(self) -> None:
        """An import string naming no module is refused, naming the content type."""
        with pytest.raises(ImproperlyConfigured, match=r"THORN_CODECS\['text/csv'\]"):
            build_codecs({"text/csv": "no_such_codec_mod:Codec"})

    def test_missing_attribute(self, codec_module: str) -> None:
        """An import string naming no attribute is refused."""
        with pytest.raises(ImproperlyConfigured, match="no attribute 'Nope'"):
            build_codecs({"text/csv": f"{codec_module}:Nope"})

    def test_builtins_satisfy_protocol(self) -> None:
        """The built-in codecs are Codec instances for the type checker."""
        codecs: list[Codec] = [JSONCodec(), FormCodec(), UpperCodec()]
        assert [c.content_type for c in codecs] == [
            JSON_CONTENT_TYPE,
            FORM_CONTENT_TYPE,
            "text/plain",
        ]


class TestCheckJSON:
    """check_json gives the verdict of JSONCodec.encode without building the text."""

    @pytest.mark.parametrize(
        "payload",
        [
            {"a": 1, "b": [1, 2.5, None, True], "c": {"d": "é"}},
            [datetime.date(2024, 1, 2), decimal.Decimal("1.5"), uuid.UUID(int=1)],
            {1: "int key", None: "none key", 2.5: "float key", False: "bool key"},
            ("tuple", "is", "a", "list"),
            "just a string",
        ],
    )
    def test_accepts_what_encode_accepts(self, payload: object) -> None:
        """Payloads that encode pass the check."""
        JSONCodec().encode(payload)
        check_json(payload)

    @pytest.mark.parametrize(
        "payload",
        [
            {"a": object()},
            [1, {2, 3}],
            {"nested": [{"deep": b"bytes"}]},
            {(1, 2): "tuple key"},
        ],
    )
    def test_refuses_what_encode_refuses(self, payload: object) -> None:
        """Payloads that do not encode fail the check, naming the offending type."""
        with pytest.raises(SerializationError) as encoded:
            JSONCodec().encode(payload)
        with pytest.raises(SerializationError) as checked:
            check_json(payload)
        for word in ("object", "set", "bytes", "tuple"):
            if word in str(encoded.value):
                assert word in str(checked.value)

    def test_circular_reference(self) -> None:
        """A payload that contains itself is refused by both."""
        loop: list[object] = []
        loop.append(loop)
        with pytest.raises(SerializationError, match=r"[Cc]ircular"):
            JSONCodec().encode(loop)
        with pytest.raises(SerializationError, match=r"[Cc]ircular"):
            check_json(loop)

    def test_shared_objects_are_not_circular(self) -> None:
        """The same list twice in one payload is fine."""
        shared = [1, 2]
        check_json({"a": shared, "b": shared})

    def test_deep_cycle(self) -> None:
        """A cycle that closes 40 levels down is refused as circular by both."""
        top: dict[str, object] = {}
        node = top
        for _ in range(40):
            child: dict[str, object] = {}
            node["next"] = [child]
            node = child
        node["back"] = top
        with pytest.raises(SerializationError, match=r"[Cc]ircular"):
            JSONCodec().encode(top)
        with pytest.raises(SerializationError, match=r"[Cc]ircular"):
            check_json(top)

    def test_deep_but_acyclic_passes(self) -> None:
        """Deep nesting with shared objects is not a cycle."""
        shared = ["leaf"]
        payload: list[object] = [shared, shared]
        for _ in range(100):
            payload = [payload, shared]
        JSONCodec().encode(payload)
        check_json(payload)

    def test_float_subclass_nan_is_refused(self) -> None:
        """NaN hidden in a float subclass is refused like a plain NaN."""

        class Reading(float):
            pass

        with pytest.raises(SerializationError, match="NaN"):
            check_json({"value": Reading("nan")})
        with pytest.raises(SerializationError, match="NaN"):
            JSONCodec().encode({"value": Reading("nan")})

    @pytest.mark.parametrize("key", [float("nan"), float("inf")])
    def test_non_finite_key_is_refused(self, key: float) -> None:
        """A NaN or infinite float key has no JSON form either."""
        with pytest.raises(SerializationError, match="NaN"):
            JSONCodec().encode({key: 1})
        with pytest.raises(SerializationError, match="NaN"):
            check_json({key: 1})

    def test_dict_subclass_is_read_like_the_encoder_reads_it(self) -> None:
        """The encoder reads a dict subclass through items(); so does the check."""

        class Clean(dict):  # type: ignore[type-arg]
            def items(self):  # type: ignore[no-untyped-def]
                return [("value", 1)]

        payload = Clean(value=object())
        JSONCodec().encode(payload)
        check_json(payload)

    def test_nested_too_deeply(self) -> None:
        """Nesting far past any recursion limit is a SerializationError, not RecursionError,
        for both the check and the encoder."""
        payload: list[object] = []
        for _ in range(100_000):
            payload = [payload]
        with pytest.raises(SerializationError, match="nested too deeply"):
            check_json(payload)
        with pytest.raises(SerializationError, match="nested too deeply"):
            JSONCodec().encode(payload)
