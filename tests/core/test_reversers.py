"""Attribute paths, model_reverser and sender_field: one helper reads values from instances."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from thorn_core import ImproperlyConfigured, InvalidModelEvent, ModelEvent, model_reverser
from thorn_core.binding import BlinkerBinding, ModelBinding
from thorn_core.paths import parse_path, resolve_path


def obj(**fields: Any) -> SimpleNamespace:
    """A plain object with the given attributes."""
    return SimpleNamespace(**fields)


class TestPaths:
    """parse_path and resolve_path."""

    def test_dotted_path(self) -> None:
        """'a.b.c' reads instance.a.b.c."""
        assert resolve_path(obj(a=obj(b=obj(c=3))), "a.b.c") == 3
        assert parse_path("a.b.c") == ("a", "b", "c")
        assert parse_path(("a", "b")) == ("a", "b")

    def test_mapping_on_the_way(self) -> None:
        """A mapping on the way is read by key."""
        assert resolve_path(obj(meta={"owner": obj(pk=4)}), "meta.owner.pk") == 4

    def test_none_on_the_way(self) -> None:
        """A None on the way makes the result None."""
        assert resolve_path(obj(user=None), "user.profile.account") is None

    def test_missing_attribute(self) -> None:
        """A missing attribute raises AttributeError."""
        with pytest.raises(AttributeError):
            resolve_path(obj(user=obj()), "user.profile")

    @pytest.mark.parametrize("path", ["", "a..b", "a.", "a.b c", "a.1b", 3, ()])
    def test_malformed(self, path: Any) -> None:
        """Malformed paths are refused."""
        with pytest.raises(InvalidModelEvent):
            parse_path(path)


class TestModelReverser:
    """model_reverser takes arguments from attribute paths and lets the binding build the URL."""

    def test_arguments(self) -> None:
        """Positional and keyword arguments are read from the instance, nested ones too."""
        reverser = model_reverser("broker:position", "id", account="user.profile.account")
        instance = obj(id=9, user=obj(profile=obj(account="acc-1")))
        assert reverser.arguments(instance) == ([9], {"account": "acc-1"})

    def test_reverse_through_template(self) -> None:
        """The generic binding formats the view's URL template with the arguments."""
        binding = BlinkerBinding(urls={"article:detail": "https://example.com/a/{uuid}/"})
        reverser = model_reverser("article:detail", uuid="uuid")
        assert reverser(obj(uuid="u-1"), binding) == "https://example.com/a/u-1/"

    def test_reverse_positional_template(self) -> None:
        """Positional arguments fill {} fields in order."""
        binding = BlinkerBinding(urls={"c": "https://example.com/c/{}/{}/"})
        reverser = model_reverser("c", "category.name", "id")
        assert reverser(obj(id=3, category=obj(name="news")), binding) == (
            "https://example.com/c/news/3/"
        )

    def test_reverse_through_callable(self) -> None:
        """A callable given as urls receives the view name and arguments."""
        calls: list[tuple[str, list[Any], dict[str, Any]]] = []

        def reverse(view: str, args: Any, kwargs: Any) -> str:
            calls.append((view, list(args), dict(kwargs)))
            return "https://example.com/x"

        binding = BlinkerBinding(urls=reverse)
        assert model_reverser("v", "a", b="b")(obj(a=1, b=2), binding) == "https://example.com/x"
        assert calls == [("v", [1], {"b": 2})]

    def test_unknown_view(self) -> None:
        """A view the binding does not know raises ImproperlyConfigured naming it."""
        with pytest.raises(ImproperlyConfigured, match="'nope'"):
            model_reverser("nope")(obj(), BlinkerBinding(urls={"yes": "https://e.com/"}))

    def test_no_urls(self) -> None:
        """A binding given no URLs cannot reverse."""
        with pytest.raises(ImproperlyConfigured, match=r"BlinkerBinding\(urls="):
            model_reverser("v")(obj(), BlinkerBinding())

    def test_malformed_definition(self) -> None:
        """A malformed path or an empty view name fails at definition time."""
        with pytest.raises(InvalidModelEvent):
            model_reverser("v", "a..b")
        with pytest.raises(InvalidModelEvent):
            model_reverser("v", uuid="not a path")
        with pytest.raises(InvalidModelEvent):
            model_reverser("")

    def test_value_semantics(self) -> None:
        """Reversers with the same definition are equal."""
        assert model_reverser("v", "a", b="c") == model_reverser("v", "a", b="c")
        assert model_reverser("v", "a") != model_reverser("v", "b")


class TestEventRef:
    """How a model event computes ``ref``."""

    def test_reverser_wins(self) -> None:
        """A reverser is used even when the instance has get_absolute_url."""
        binding = BlinkerBinding(urls={"v": "https://e.com/{id}"})
        event = ModelEvent("a.b", reverse=model_reverser("v", id="id"))
        instance = obj(id=1, get_absolute_url=lambda: "https://other/")
        assert event.get_absolute_url(instance, binding) == "https://e.com/1"

    def test_callable_reverse(self) -> None:
        """A plain callable receives the instance."""
        event = ModelEvent("a.b", reverse=lambda i: f"https://e.com/{i.id}")
        assert event.get_absolute_url(obj(id=5)) == "https://e.com/5"

    def test_get_absolute_url(self) -> None:
        """Without a reverser, the instance's get_absolute_url() is used."""
        event = ModelEvent("a.b")
        assert event.get_absolute_url(obj(get_absolute_url=lambda: "https://e.com/")) == (
            "https://e.com/"
        )

    def test_none(self) -> None:
        """Without either, ref is None."""
        assert ModelEvent("a.b").get_absolute_url(obj()) is None

    def test_bad_reverse(self) -> None:
        """A reverse that is neither a reverser nor callable is refused."""
        with pytest.raises(InvalidModelEvent, match="reverse must be"):
            ModelEvent("a.b", reverse="article:detail")  # type: ignore[arg-type]

    def test_binding_is_a_model_binding(self) -> None:
        """BlinkerBinding satisfies the ModelBinding protocol."""
        assert isinstance(BlinkerBinding(), ModelBinding)


class TestSenderField:
    """sender_field is a dotted path read with the same helper."""

    def test_nested_sender(self) -> None:
        """'author.account.user' reads instance.author.account.user."""
        user = obj(pk=42)
        event = ModelEvent("a.b", sender_field="author.account.user")
        assert event.instance_sender(obj(author=obj(account=obj(user=user)))) is user

    def test_no_sender_field(self) -> None:
        """Without sender_field, the sender is None."""
        assert ModelEvent("a.b").instance_sender(obj()) is None

    def test_none_on_the_way(self) -> None:
        """An instance without an author has no sender."""
        event = ModelEvent("a.b", sender_field="author.account.user")
        assert event.instance_sender(obj(author=None)) is None

    def test_message_sender_is_the_key(self) -> None:
        """The message's sender is the user's pk."""
        event = ModelEvent("a.b", sender_field="author")
        instance = obj(author=obj(pk=42))
        message = event.to_message(instance, {}, event.instance_sender(instance))
        assert message == {"event": "a.b", "ref": None, "sender": 42, "data": {}}

    def test_malformed(self) -> None:
        """A malformed sender_field fails at definition time."""
        with pytest.raises(InvalidModelEvent):
            ModelEvent("a.b", sender_field="author..user")
        with pytest.raises(InvalidModelEvent):
            ModelEvent("a.b", sender_field=3)  # type: ignore[arg-type]
