"""THORN_BASE_URL in Flask: model events' ``ref`` is the base URL joined to the view's path,
with no request and no SERVER_NAME, and it wins over the request's host."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask

from thorn_core.receiver import WebhookReceiver

from .app import Article, db, store_subscription

BASE = "https://shop.example.com/app"


def ref_of_new_article(app: flask.Flask, receiver: WebhookReceiver, context: Any) -> str:
    """Commit an article inside ``context``; the ``ref`` its webhook carries, the id as {id}."""
    store_subscription(app, receiver.url(), "article.*")
    with context:
        article = Article(title="Base")
        db.session.add(article)
        db.session.commit()
        (webhook,) = receiver.wait_for(1, 5.0)
        ref: str = webhook.json()["ref"]
        return ref.replace(str(article.id), "{id}")


class TestBaseURL:
    """The ref of a model event is joined to THORN_BASE_URL in Flask apps."""

    def test_outside_a_request_without_server_name(
        self, make_app: Callable[..., flask.Flask], receiver: WebhookReceiver
    ) -> None:
        """A commit in an app context (a worker, a CLI) gets the base URL and the view path."""
        app = make_app({"THORN_BASE_URL": BASE, "SERVER_NAME": None})
        assert ref_of_new_article(app, receiver, app.app_context()) == f"{BASE}/articles/{{id}}"

    def test_wins_over_the_request_host(
        self, make_app: Callable[..., flask.Flask], receiver: WebhookReceiver
    ) -> None:
        """Inside a request the base URL is used, not the host the request came to."""
        app = make_app({"THORN_BASE_URL": BASE, "SERVER_NAME": None})
        request = app.test_request_context(base_url="http://internal:8000")
        assert ref_of_new_article(app, receiver, request) == f"{BASE}/articles/{{id}}"

    def test_application_root_is_part_of_the_path(
        self, make_app: Callable[..., flask.Flask], receiver: WebhookReceiver
    ) -> None:
        """An app mounted under APPLICATION_ROOT keeps that prefix after the base URL."""
        app = make_app({"THORN_BASE_URL": BASE, "SERVER_NAME": None, "APPLICATION_ROOT": "/blog"})
        context = app.app_context()
        assert ref_of_new_article(app, receiver, context) == f"{BASE}/blog/articles/{{id}}"
