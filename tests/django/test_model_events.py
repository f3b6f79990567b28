"""Model events on Django models, delivered to a real receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from thorn_core.receiver import WebhookReceiver
from thorn_django import DjangoBinding, get_app

from .testapp.models import Article, Note, Tag

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("loopback")]


def events(receiver: WebhookReceiver) -> list[str]:
    """The ``Hook-Event`` of every request received so far, then forget them."""
    names = [str(webhook.event) for webhook in receiver.received]
    receiver.received.clear()
    return names


@pytest.fixture
def everything(subscribe: Callable[..., Any], receiver: WebhookReceiver) -> Any:
    """A stored subscriber of every event, at the receiver."""
    return subscribe("*", receiver.url("/hooks"))


class TestSaveAndDelete:
    def test_create_sends_the_model_message(
        self, everything: Any, receiver: WebhookReceiver
    ) -> None:
        """Creating an article delivers ``article.created`` with ref, sender and payload."""
        article = Article.objects.create(title="Hello")
        (webhook,) = receiver.received
        assert webhook.event == "article.created"
        assert webhook.json() == {
            "event": "article.created",
            "ref": f"https://example.com/articles/{article.uuid}/",
            "sender": None,
            "data": {"title": "Hello", "state": "DRAFT"},
        }
        assert webhook.standard_webhook_valid(everything.hmac_secret)
        assert webhook.hook_hmac_valid(everything.hmac_secret)

    def test_change_and_transition(self, everything: Any, receiver: WebhookReceiver) -> None:
        """A save sends ``article.changed``, and ``article.published`` when the state became so."""
        article = Article.objects.create(title="Hello")
        events(receiver)
        article.state = "PUBLISHED"
        article.save()
        assert events(receiver) == ["article.changed", "article.published"]
        article.title = "Hello again"
        article.save()
        assert events(receiver) == ["article.changed"]

    def test_delete(self, everything: Any, receiver: WebhookReceiver) -> None:
        """Deleting sends ``article.removed`` with the data of the deleted row."""
        article = Article.objects.create(title="Gone soon")
        events(receiver)
        article.delete()
        (webhook,) = receiver.received
        assert webhook.json()["event"] == "article.removed"
        assert webhook.json()["data"]["title"] == "Gone soon"

    def test_reversed_ref_is_absolute(self, everything: Any, receiver: WebhookReceiver) -> None:
        """A ``model_reverser`` ref is ``django.urls.reverse`` on the current site."""
        note = Note.objects.create(text="hi")
        assert receiver.received[0].json()["ref"] == f"https://example.com/authors/{note.pk}/"

    def test_site_domain_with_scheme(self, everything: Any, receiver: WebhookReceiver) -> None:
        """A site domain that starts with a scheme is used as the base URL as it is."""
        from django.contrib.sites.models import Site

        Site.objects.filter(pk=1).update(domain="http://127.0.0.1:8000")
        Site.objects.clear_cache()
        try:
            article = Article.objects.create(title="Local")
        finally:
            Site.objects.clear_cache()
        ref = receiver.received[0].json()["ref"]
        assert ref == f"http://127.0.0.1:8000/articles/{article.uuid}/"


class TestManyToMany:
    def test_add_remove_clear(self, everything: Any, receiver: WebhookReceiver) -> None:
        """Adding, removing and clearing tags send their events with the related ids."""
        article = Article.objects.create(title="Tagged")
        red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
        events(receiver)
        article.tags.add(red, blue)
        article.tags.add(red)  # already there: nothing added, nothing sent
        article.tags.remove(blue)
        article.tags.clear()
        bodies = [webhook.json() for webhook in receiver.received]
        assert [body["event"] for body in bodies] == [
            "article.tagged",
            "article.untagged",
            "article.tags_cleared",
        ]


class TestTransactions:
    def test_sent_after_commit(self, everything: Any, receiver: WebhookReceiver) -> None:
        """Inside ``atomic()`` nothing is sent until the transaction commits."""
        with transaction.atomic():
            Article.objects.create(title="Later")
            assert receiver.received == []
        assert events(receiver) == ["article.created"]

    def test_nothing_sent_on_rollback(self, everything: Any, receiver: WebhookReceiver) -> None:
        """A rolled back transaction sends nothing: the event did not happen."""
        try:
            with transaction.atomic():
                Article.objects.create(title="Never")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert receiver.received == []
        assert not Article.objects.exists()

    def test_rolled_back_savepoint(self, everything: Any, receiver: WebhookReceiver) -> None:
        """Only the events of a rolled back savepoint are dropped."""
        with transaction.atomic():
            Article.objects.create(title="Kept")
            try:
                with transaction.atomic():
                    Article.objects.create(title="Dropped")
                    raise RuntimeError("roll back the savepoint")
            except RuntimeError:
                pass
        bodies = [webhook.json()["data"]["title"] for webhook in receiver.received]
        assert bodies == ["Kept"]

    def test_event_that_does_not_honor_transactions(
        self, everything: Any, receiver: WebhookReceiver
    ) -> None:
        """An event with ``signal_honors_transaction=False`` sends inside the transaction."""
        note = Note.objects.create(text="a")
        events(receiver)
        with transaction.atomic():
            note.text = "b"
            note.save()
            assert events(receiver) == ["note.changed"]

    def test_setting_off_sends_at_once(
        self, everything: Any, receiver: WebhookReceiver, settings: Any
    ) -> None:
        """With ``THORN_SIGNAL_HONORS_TRANSACTION = False`` the event goes out at save()."""
        settings.THORN_SIGNAL_HONORS_TRANSACTION = False
        with transaction.atomic():
            Article.objects.create(title="Now")
            assert events(receiver) == ["article.created"]


class TestPreviousValues:
    def test_row_read_only_for_now_filters(
        self, everything: Any, django_assert_num_queries: Any, settings: Any
    ) -> None:
        """Saving a Note (no ``now_`` filter) reads nothing first; an Article reads its row."""
        settings.THORN_DELIVERY_LOG = None  # count the binding's queries, not the log's
        note = Note.objects.create(text="a")
        article = Article.objects.create(title="a")
        note.text = "b"
        with django_assert_num_queries(2):  # UPDATE, and the subscriber lookup of note.changed
            note.save()
        article.title = "b"
        with django_assert_num_queries(3):  # SELECT the row before, UPDATE, subscriber lookup
            article.save()


class TestSenders:
    def test_owned_subscriptions_receive_their_users_events(
        self,
        subscribe: Callable[..., Any],
        make_user: Callable[[str], Any],
        receiver: WebhookReceiver,
    ) -> None:
        """A user's subscription receives the events of that user's articles only."""
        alice, bob = make_user("alice"), make_user("bob")
        subscribe("article.created", receiver.url("/alice"), user=alice)
        Article.objects.create(title="Bob's", author=bob)
        Article.objects.create(title="Alice's", author=alice)
        (webhook,) = receiver.received
        assert webhook.path == "/alice"
        assert webhook.json()["sender"] == alice.pk


class TestBinding:
    def test_models_use_the_django_binding(self) -> None:
        """Models decorated before ``ready()`` are connected through the app's DjangoBinding."""
        binding = get_app().binding
        assert isinstance(binding, DjangoBinding)
        for event in Article.webhooks.events.values():
            assert event.binding_for(Article) is binding

    def test_gone_deactivates_the_subscription(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """A 410 Gone answer sets ``active=False`` on the stored subscriber."""
        receiver.respond = lambda _request: (410, b"gone")
        row = subscribe("article.created", receiver.url("/gone"))
        Article.objects.create(title="x")
        row.refresh_from_db()
        assert row.active is False


class TestBaseURL:
    """THORN_BASE_URL makes ``ref`` absolute without the Sites framework."""

    def test_base_url_prefixes_relative_paths(self) -> None:
        """A relative path gets the base URL; an absolute URL is left alone."""
        from django.test import override_settings

        from thorn_django.binding import absolute_uri

        with override_settings(THORN_BASE_URL="https://shop.example.com/"):
            assert absolute_uri("/articles/1/") == "https://shop.example.com/articles/1/"
            assert absolute_uri("articles/1/") == "https://shop.example.com/articles/1/"
            assert absolute_uri("https://cdn.example.com/x") == "https://cdn.example.com/x"
