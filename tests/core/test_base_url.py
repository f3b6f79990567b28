"""THORN_BASE_URL in the core: a relative ``ref`` of a model event is joined to it, whatever
produced it (a model_reverser, a callable, ``get_absolute_url()``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from thorn_core import ImproperlyConfigured, ModelEvent, Thorn, model_reverser
from thorn_core.binding import BlinkerBinding
from thorn_core.receiver import WebhookReceiver
from thorn_core.reversers import absolute_ref, join_base_url

WAIT = 5.0
BASE = "https://shop.example.com/app/"


class Article:
    """A plain "model" with a relative ``get_absolute_url()``."""

    def __init__(self, id: int = 5) -> None:
        self.id = id

    def get_absolute_url(self) -> str:
        return f"/articles/{self.id}/"


def ref(app: Thorn, **options: Any) -> str | None:
    """The ``ref`` the ``article.changed`` event of ``app`` gives an Article."""
    event = ModelEvent("article.changed", app=app, **options).dispatches_on_change()
    return event.get_absolute_url(Article())


class TestJoin:
    """Relative paths go under the base URL; absolute URLs are kept."""

    @pytest.mark.parametrize(
        ("base", "path", "joined"),
        [
            ("https://shop.example.com", "/a/1/", "https://shop.example.com/a/1/"),
            ("https://shop.example.com/", "a/1/", "https://shop.example.com/a/1/"),
            (BASE, "/a/1/", "https://shop.example.com/app/a/1/"),
        ],
    )
    def test_join_base_url(self, base: str, path: str, joined: str) -> None:
        """One slash between the base (its own path kept) and the relative path."""
        assert join_base_url(base, path) == joined

    def test_absolute_urls_are_kept(self) -> None:
        """A URL with a scheme is never rewritten; a path containing '://' is still a path."""
        assert absolute_ref("https://cdn.example.com/x", BASE) == "https://cdn.example.com/x"
        assert (
            absolute_ref("/go?to=https://x", BASE) == "https://shop.example.com/app/go?to=https://x"
        )
        assert absolute_ref(None, BASE) is None


class TestModelEvents:
    """The generic binding's model events get absolute refs from THORN_BASE_URL."""

    def test_get_absolute_url_path(self, make_app: Callable[..., Thorn]) -> None:
        """A ``get_absolute_url()`` path is joined to the base URL."""
        app = make_app({"THORN_BASE_URL": BASE})
        assert ref(app) == "https://shop.example.com/app/articles/5/"

    def test_callable_and_reverser_paths(self, make_app: Callable[..., Thorn]) -> None:
        """Paths from a callable ``reverse`` or a relative URL template are joined too."""
        binding = BlinkerBinding(urls={"article:detail": "/a/{id}/"})
        app = make_app({"THORN_BASE_URL": BASE}, binding=binding)
        assert ref(app, reverse=lambda a: f"p/{a.id}") == "https://shop.example.com/app/p/5"
        assert (
            ref(app, reverse=model_reverser("article:detail", id="id"))
            == "https://shop.example.com/app/a/5/"
        )

    def test_without_base_url_paths_stay_relative(self, make_app: Callable[..., Thorn]) -> None:
        """With no base URL and no ``absolute_url`` on the binding the path is left as is."""
        assert ref(make_app()) == "/articles/5/"

    def test_ref_on_the_wire(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """The delivered message carries the joined ref."""
        app = make_app({"THORN_BASE_URL": BASE, "THORN_SUBSCRIBERS": {"*": receiver.url()}})
        event = ModelEvent("article.changed", app=app).dispatches_on_change()
        event.send_from_instance(Article(8))
        (got,) = receiver.wait_for(1, WAIT)
        assert got.json()["ref"] == "https://shop.example.com/app/articles/8/"


class TestBadBaseURL:
    """A base URL that cannot prefix a path is refused when the app is configured."""

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("shop.example.com", "an http(s) URL with a host"),
            ("ftp://shop.example.com", "an http(s) URL with a host"),
            ("https://shop.example.com/?x=1", "a URL without a query or fragment"),
            (42, "an http(s) URL with a host"),
        ],
    )
    def test_refused(self, value: object, reason: str) -> None:
        """ImproperlyConfigured names the setting and what it must be."""
        with pytest.raises(
            ImproperlyConfigured, match=re.escape(f"THORN_BASE_URL must be {reason}")
        ):
            Thorn({"THORN_BASE_URL": value}, set_as_current=False)
