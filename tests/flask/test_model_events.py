"""Model events on SQLAlchemy: sent after commit to a real receiver, dropped on rollback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask
import pytest
from sqlalchemy.exc import IntegrityError

from thorn_core.exceptions import ImproperlyConfigured
from thorn_core.receiver import WebhookReceiver
from thorn_flask import binding

from .app import Article, Author, Subscription, Tag, db


def events(receiver: WebhookReceiver) -> list[str | None]:
    """The ``Hook-Event`` of each request received so far, then forget them."""
    found = [webhook.event for webhook in receiver.received]
    receiver.received.clear()
    return found


@pytest.fixture
def hooks(subscribe: Callable[..., Subscription], receiver: WebhookReceiver) -> Subscription:
    """A stored subscription of the receiver to every article event."""
    return subscribe(receiver.url("/hooks"), "article.*")


class TestAfterCommit:
    """Webhooks go out after the session commits, never before, and not after a rollback."""

    def test_create_is_sent_after_commit(
        self, app: flask.Flask, hooks: Subscription, receiver: WebhookReceiver
    ) -> None:
        """A flushed insert sends nothing until the commit, then the signed message."""
        app.config["SERVER_NAME"] = None  # in a request, the URL takes the request's host
        with app.test_request_context(base_url="https://shop.example"):
            ada = Author(name="ada")
            article = Article(title="Webhooks", author=ada)
            db.session.add(article)
            db.session.flush()
            assert receiver.received == []
            db.session.commit()
            (webhook,) = receiver.received
            assert webhook.event == "article.created"
            assert webhook.json() == {
                "event": "article.created",
                "ref": f"https://shop.example/articles/{article.id}",
                "sender": ada.id,
                "data": {"title": "Webhooks", "state": "DRAFT"},
            }
            assert webhook.standard_webhook_valid(hooks.hmac_secret)
            assert webhook.hook_hmac_valid(hooks.hmac_secret)

    def test_rollback_drops_the_webhooks(
        self, app: flask.Flask, hooks: Subscription, receiver: WebhookReceiver
    ) -> None:
        """A flushed insert that is rolled back sends nothing, even after a later commit."""
        with app.app_context():
            db.session.add(Article(title="Never"))
            db.session.flush()
            db.session.rollback()
            db.session.commit()
            assert receiver.received == []

    def test_savepoint_rollback_drops_only_its_own(
        self, app: flask.Flask, hooks: Subscription, receiver: WebhookReceiver
    ) -> None:
        """Changes in a rolled-back savepoint are dropped; the rest are sent at the commit."""
        with app.app_context():
            db.session.add(Article(title="Kept"))
            db.session.flush()
            savepoint = db.session.begin_nested()
            db.session.add(Article(title="Dropped"))
            db.session.flush()
            savepoint.rollback()
            with db.session.begin_nested():
                db.session.add(Article(title="Released"))
            db.session.commit()
            titles = [webhook.json()["data"]["title"] for webhook in receiver.received]
            assert titles == ["Kept", "Released"]

    def test_closed_session_forgets_waiting_webhooks(
        self, app: flask.Flask, hooks: Subscription, receiver: WebhookReceiver
    ) -> None:
        """A session closed without committing sends nothing, now or at its next commit."""
        with app.app_context():
            db.session.add(Article(title="Abandoned"))
            db.session.flush()
            db.session.close()
            db.session.add(Author(name="bob"))
            db.session.commit()
            assert receiver.received == []

    def test_failing_commit_sends_nothing(
        self, app: flask.Flask, hooks: Subscription, receiver: WebhookReceiver
    ) -> None:
        """When a later flush of the transaction fails, the earlier changes are not announced."""
        with app.app_context():
            db.session.add(Article(title="First"))
            db.session.flush()
            db.session.add(Article(title=None))
            with pytest.raises(IntegrityError):
                db.session.commit()
            db.session.rollback()
            assert receiver.received == []


class TestChanges:
    """Updates, transitions read from attribute history, and deletes."""

    def test_change_and_transition(
        self, app: flask.Flask, hooks: Subscription, receiver: WebhookReceiver
    ) -> None:
        """Publishing sends ``changed`` and ``published``; a later edit only ``changed``."""
        with app.app_context():
            article = Article(title="Draft")
            db.session.add(article)
            db.session.commit()
            events(receiver)
            article.state = "PUBLISHED"  # the instance is expired: its old value is loaded
            db.session.commit()
            assert events(receiver) == ["article.changed", "article.published"]
            article.title = "Edited"
            db.session.commit()
            assert events(receiver) == ["article.changed"]

    def test_unmodified_instance_sends_nothing(
        self, app: flask.Flask, hooks: Subscription, receiver: WebhookReceiver
    ) -> None:
        """Setting a column to the value it has is not a change."""
        with app.app_context():
            article = Article(title="Same")
            db.session.add(article)
            db.session.commit()
            events(receiver)
            article.title = "Same"
            db.session.commit()
            assert receiver.received == []

    def test_delete_of_an_expired_instance(
        self, app: flask.Flask, hooks: Subscription, receiver: WebhookReceiver
    ) -> None:
        """A deleted instance's payload is read before its row is gone."""
        with app.app_context():
            article = Article(title="Gone soon")
            db.session.add(article)
            db.session.commit()
            events(receiver)
            db.session.delete(article)
            db.session.commit()
            (webhook,) = receiver.received
            assert webhook.json()["event"] == "article.removed"
            assert webhook.json()["data"] == {"title": "Gone soon", "state": "DRAFT"}


class TestManyToMany:
    """Relationship collection events become many-to-many hooks at the flush."""

    def test_add_remove_and_clear(
        self, app: flask.Flask, hooks: Subscription, receiver: WebhookReceiver
    ) -> None:
        """Added and removed tags are sent with their ids; emptying the collection also clears."""
        with app.app_context():
            news, tech = Tag(name="news"), Tag(name="tech")
            article = Article(title="Tagged")
            db.session.add_all([article, news, tech])
            db.session.commit()
            events(receiver)
            article.tags.append(news)
            article.tags.append(tech)
            db.session.commit()
            (webhook,) = receiver.received
            assert webhook.event == "article.tagged"
            assert receiver.received[0].json()["data"] == {"title": "Tagged", "state": "DRAFT"}
            events(receiver)
            article.tags.remove(news)
            db.session.commit()
            assert events(receiver) == ["article.untagged"]
            article.tags.clear()
            db.session.commit()
            assert events(receiver) == ["article.untagged", "article.tags_cleared"]

    def test_append_then_remove_is_no_change(
        self, app: flask.Flask, hooks: Subscription, receiver: WebhookReceiver
    ) -> None:
        """A tag added and removed before the flush sends nothing."""
        with app.app_context():
            tag = Tag(name="x")
            article = Article(title="Undecided")
            db.session.add_all([article, tag])
            db.session.commit()
            events(receiver)
            article.tags.append(tag)
            article.tags.remove(tag)
            db.session.commit()
            assert receiver.received == []

    def test_related_ids_reach_callable_subscribers(
        self, make_app: Callable[..., flask.Flask], database: dict[str, Any]
    ) -> None:
        """The send context holds the field, the action and the related ids."""
        seen: list[dict[str, Any]] = []

        def record(event: str, sender: Any = None, **context: Any) -> None:
            seen.append({"event": event, **context})

        app = make_app({**database, "THORN_SUBSCRIBERS": {"article.tagged": record}})
        with app.app_context():
            tag = Tag(name="t")
            article = Article(title="A", tags=[tag])
            db.session.add(article)
            db.session.commit()
            assert seen == [
                {"event": "article.tagged", "field": "tags", "action": "add", "related": [tag.id]}
            ]


class TestReverse:
    """``ref`` URLs come from ``url_for(..., _external=True)``."""

    def test_server_name_outside_a_request(
        self, app: flask.Flask, hooks: Subscription, receiver: WebhookReceiver
    ) -> None:
        """In an app context without a request, SERVER_NAME makes the URL."""
        with app.app_context():
            article = Article(title="Cron")
            db.session.add(article)
            db.session.commit()
            assert (
                receiver.received[0].json()["ref"] == f"http://example.test/articles/{article.id}"
            )

    def test_no_app_context_is_a_clear_error(self) -> None:
        """Reversing without an application context says what is missing."""
        with pytest.raises(ImproperlyConfigured, match="application context"):
            binding.reverse("article_detail", [], {"id": 1})

    def test_positional_arguments_are_refused(self, app: flask.Flask) -> None:
        """Flask endpoints take keyword arguments only."""
        with app.app_context(), pytest.raises(ImproperlyConfigured, match="keyword"):
            binding.reverse("article_detail", [1], {})


class TestOwnedSubscriptions:
    """A subscription with an owner receives only the events of that owner's records."""

    def test_owner_receives_only_own_articles(
        self,
        app: flask.Flask,
        subscribe: Callable[..., Subscription],
        receiver: WebhookReceiver,
    ) -> None:
        """Bob's subscription hears of Bob's article, not of Ada's."""
        with app.app_context():
            ada, bob = Author(name="ada"), Author(name="bob")
            db.session.add_all([ada, bob])
            db.session.commit()
            subscribe(receiver.url("/bob"), "article.created", user_id=str(bob.id))
            db.session.add_all(
                [Article(title="By Ada", author=ada), Article(title="By Bob", author=bob)]
            )
            db.session.commit()
        assert [w.json()["data"]["title"] for w in receiver.received] == ["By Bob"]
