"""Model events end to end: plain objects, the blinker binding and a real receiver on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from thorn_core import (
    ImproperlyConfigured,
    InvalidEventName,
    InvalidModelEvent,
    ModelEvent,
    Q,
    SerializationError,
    Thorn,
    model_reverser,
    webhook_model,
)
from thorn_core.binding import BlinkerBinding, atomic, changed, created, deleted, m2m_changed
from thorn_core.model_events import ModelWebhooks
from thorn_core.receiver import WebhookReceiver

#: Seconds to wait for something that should happen at once.
WAIT = 5.0
URLS = {"article:detail": "https://example.com/articles/{id}/"}


class User:
    """A stand-in for a user: Thorn identifies it by ``pk``."""

    def __init__(self, pk: int, username: str = "ada") -> None:
        self.pk = pk
        self.username = username


class Article:
    """A plain Python "model"; tests subclass it and decorate the subclass."""

    def __init__(
        self, id: int = 1, title: str = "The Art", state: str = "DRAFT", author: Any = None
    ) -> None:
        self.id = id
        self.title = title
        self.state = state
        self.author = author


@pytest.fixture
def hook_app(make_app: Callable[..., Thorn], receiver: WebhookReceiver) -> Thorn:
    """The current app: every event goes to ``receiver``; URLs reverse through ``URLS``."""
    return make_app(
        {"THORN_SUBSCRIBERS": {"*": receiver.url("/hook")}},
        binding=BlinkerBinding(urls=URLS),
        set_as_current=True,
    )


@pytest.fixture
def models() -> Iterator[Callable[[type], type]]:
    """Register decorated models; their events are disconnected after the test."""
    seen: list[type] = []

    def register(model: type) -> type:
        seen.append(model)
        return model

    yield register
    for model in seen:
        for event in model.webhooks.events.values():  # type: ignore[attr-defined]
            event.disconnect_model(model)


def bodies(receiver: WebhookReceiver, count: int) -> list[Any]:
    """Wait for ``count`` webhooks and return their JSON bodies."""
    return [r.json() for r in receiver.wait_for(count, WAIT)]


def settle(receiver: WebhookReceiver, expected: int) -> list[Any]:
    """Send a marker after the webhooks under test, so that "nothing more arrived" is certain.

    The default dispatcher delivers inside ``send()``, so by the time the marker arrives
    every earlier webhook has arrived too.
    """
    from thorn_core import Event

    Event("test.marker").send({"marker": True})
    received = bodies(receiver, expected + 1)
    assert received[-1] == {"marker": True}
    return received[:-1]


class TestMessage:
    """The body is ``{"event", "ref", "sender", "data"}``, exactly."""

    def test_create_change_delete(self, hook_app, receiver, models):
        """The three default hooks send their events with the wire format."""

        @models
        @webhook_model(sender_field="author", reverse=model_reverser("article:detail", id="id"))
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created")
                on_change = ModelEvent("article.changed")
                on_delete = ModelEvent("article.removed")

                def payload(self, article):
                    return {"title": article.title, "state": article.state}

        post = Post(id=7, author=User(42))
        created.send(Post, instance=post)
        post.title = "The Craft"
        changed.send(Post, instance=post)
        deleted.send(Post, instance=post)

        received = receiver.wait_for(3, WAIT)
        ref = "https://example.com/articles/7/"
        assert [r.json() for r in received] == [
            {
                "event": "article.created",
                "ref": ref,
                "sender": 42,
                "data": {"title": "The Art", "state": "DRAFT"},
            },
            {
                "event": "article.changed",
                "ref": ref,
                "sender": 42,
                "data": {"title": "The Craft", "state": "DRAFT"},
            },
            {
                "event": "article.removed",
                "ref": ref,
                "sender": 42,
                "data": {"title": "The Craft", "state": "DRAFT"},
            },
        ]
        assert [r.event for r in received] == [
            "article.created",
            "article.changed",
            "article.removed",
        ]
        assert all(r.path == "/hook" for r in received)

    def test_defaults_are_null_and_empty(self, hook_app, receiver, models):
        """Without reverse, get_absolute_url, sender or payload: ref/sender null, data {}."""

        @models
        @webhook_model
        class Bare:
            class webhooks:
                on_create = ModelEvent("bare.created")

        created.send(Bare, instance=Bare())
        assert bodies(receiver, 1) == [
            {"event": "bare.created", "ref": None, "sender": None, "data": {}}
        ]

    def test_model_methods(self, hook_app, receiver, models):
        """webhook_payload(), webhook_headers() and get_absolute_url() on the model are used."""

        @models
        @webhook_model
        class Page(Article):
            class webhooks:
                on_create = ModelEvent("page.created")

            def webhook_payload(self):
                return {"title": self.title}

            def webhook_headers(self):
                return {"X-Page": str(self.id)}

            def get_absolute_url(self):
                return f"https://example.com/pages/{self.id}"

        created.send(Page, instance=Page(id=3))
        (received,) = receiver.wait_for(1, WAIT)
        assert received.json() == {
            "event": "page.created",
            "ref": "https://example.com/pages/3",
            "sender": None,
            "data": {"title": "The Art"},
        }
        assert received.headers["x-page"] == "3"

    def test_headers_callback(self, hook_app, receiver, models):
        """The webhooks.headers() callback adds HTTP headers; the Hook headers stay."""

        @models
        @webhook_model(sender_field="author")
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created")

                def headers(self, article):
                    return {"Authorization": f"Bearer token-of-{article.author.username}"}

        created.send(Post, instance=Post(author=User(1, "ada")))
        (received,) = receiver.wait_for(1, WAIT)
        assert received.headers["authorization"] == "Bearer token-of-ada"
        assert received.headers["hook-event"] == "article.created"

    def test_formatted_name(self, hook_app, receiver, models):
        """A name with format fields is formatted with the instance."""

        @models
        @webhook_model
        class Account(User):
            class webhooks:
                on_create = ModelEvent("user.{.username}")

        created.send(Account, instance=Account(1, "alice"))
        (received,) = receiver.wait_for(1, WAIT)
        assert received.event == "user.alice"
        assert received.json()["event"] == "user.alice"
        assert Account.webhooks.events["on_create"].name == "user.{.username}"  # type: ignore[attr-defined]

    def test_malformed_formatted_name(self, hook_app, models):
        """A formatted name that is not a valid event name raises InvalidEventName."""

        @models
        @webhook_model
        class Account(User):
            class webhooks:
                on_create = ModelEvent("user.{.username}")

        with pytest.raises(InvalidEventName, match=r"formatted from 'user.\{.username\}'"):
            created.send(Account, instance=Account(1, "two words"))

    def test_unbalanced_format_name(self):
        """A name that is not a valid format string fails at definition time."""
        with pytest.raises(InvalidEventName, match="format string"):
            ModelEvent("user.{.username")

    def test_sender_owned_subscriptions(self, make_app, make_receiver, models):
        """A subscriber owned by a user receives only the events sent by that user."""
        owned, everyone = make_receiver(), make_receiver()
        make_app(
            {
                "THORN_SUBSCRIBERS": {
                    "article.*": [{"url": owned.url(), "user": 7}, {"url": everyone.url()}],
                }
            },
            set_as_current=True,
        )

        @models
        @webhook_model(sender_field="author.account.user")
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created")

        def by(pk):
            from types import SimpleNamespace

            return SimpleNamespace(account=SimpleNamespace(user=User(pk)))

        created.send(Post, instance=Post(id=1, author=by(8)))
        created.send(Post, instance=Post(id=2, author=by(7)))
        assert [b["sender"] for b in bodies(everyone, 2)] == [8, 7]
        assert [b["sender"] for b in bodies(owned, 1)] == [7]


class TestTriggers:
    """Which hooks send which events."""

    def test_transition_event(self, hook_app, receiver, models):
        """state__now_eq fires on the change into the state, not while it stays."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_publish = ModelEvent(
                    "article.published", state__now_eq="PUBLISHED"
                ).dispatches_on_change()

        post = Post(state="PUBLISHED")
        created.send(Post, instance=post)  # not a change
        changed.send(Post, instance=post, previous={"state": "PUBLISHED"})  # no transition
        changed.send(Post, instance=post, previous={"state": "DRAFT"})  # the transition
        assert [b["event"] for b in settle(receiver, 1)] == ["article.published"]

    def test_previous_object(self, hook_app, receiver, models):
        """The previous version may be an object, such as a copy of the instance."""
        import copy

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_publish = ModelEvent(
                    "article.published", state__now_eq="PUBLISHED"
                ).dispatches_on_change()

        post = Post()
        before = copy.copy(post)
        post.state = "PUBLISHED"
        changed.send(Post, instance=post, previous=before)
        assert bodies(receiver, 1)[0]["event"] == "article.published"

    def test_missing_previous_is_an_error(self, hook_app, models):
        """A change without previous values, for an event with now_ filters, is an error."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_publish = ModelEvent(
                    "article.published", state__now_eq="PUBLISHED"
                ).dispatches_on_change()

        with pytest.raises(ImproperlyConfigured, match="previous"):
            changed.send(Post, instance=Post(state="PUBLISHED"))

    def test_previous_loaded_only_for_transitions(self, hook_app, receiver, models):
        """load_previous is not called when no connected event uses now_ filters."""
        loads: list[int] = []

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_change = ModelEvent("article.changed", state__eq="PUBLISHED")

        changed.send(Post, instance=Post(state="PUBLISHED"), load_previous=lambda: loads.append(1))
        assert bodies(receiver, 1)[0]["event"] == "article.changed"
        assert loads == []

    def test_filters_on_create(self, hook_app, receiver, models):
        """Filters apply to create events; now_ filters on create compare with nothing."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_create = ModelEvent(
                    "article.created",
                    Q(state__eq="PUBLISHED") | Q(title__startswith="Breaking"),
                )
                on_create_published = ModelEvent(
                    "article.created-published", state__now_eq="PUBLISHED"
                ).dispatches_on_create()

        created.send(Post, instance=Post(id=1, state="DRAFT", title="Quiet"))
        created.send(Post, instance=Post(id=2, state="DRAFT", title="Breaking news"))
        created.send(Post, instance=Post(id=3, state="PUBLISHED"))
        events = [(b["event"], b["data"]) for b in settle(receiver, 3)]
        assert [e for e, _ in events] == [
            "article.created",
            "article.created",
            "article.created-published",
        ]

    def test_m2m_hooks(self, make_app, receiver, models):
        """m2m add/remove/clear send for their field; the context reaches callable subscribers."""
        contexts: list[dict[str, Any]] = []

        def route(event, sender=None, **context):
            contexts.append(context)
            return receiver.url("/tags")

        make_app({"THORN_SUBSCRIBERS": {"article.*": route}}, set_as_current=True)

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_tag = ModelEvent("article.tagged").dispatches_on_m2m_add("tags")
                on_untag = ModelEvent("article.untagged").dispatches_on_m2m_remove("tags")
                on_clear = ModelEvent("article.tags-cleared").dispatches_on_m2m_clear("tags")

        post = Post()
        m2m_changed.send(Post, instance=post, field="tags", action="add", related=[1, 2])
        m2m_changed.send(Post, instance=post, field="authors", action="add", related=[9])
        m2m_changed.send(Post, instance=post, field="tags", action="remove", related=[1])
        m2m_changed.send(Post, instance=post, field="tags", action="clear")
        received = receiver.wait_for(3, WAIT)
        assert [r.event for r in received] == [
            "article.tagged",
            "article.untagged",
            "article.tags-cleared",
        ]
        assert contexts == [
            {"field": "tags", "action": "add", "related": [1, 2]},
            {"field": "tags", "action": "remove", "related": [1]},
            {"field": "tags", "action": "clear", "related": []},
        ]

    def test_several_triggers(self, hook_app, receiver, models):
        """One event may dispatch on several hooks."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_touch = (
                    ModelEvent("article.touched").dispatches_on_create().dispatches_on_delete()
                )

        created.send(Post, instance=Post())
        changed.send(Post, instance=Post())
        deleted.send(Post, instance=Post())
        assert len(settle(receiver, 2)) == 2

    def test_custom_event_needs_a_dispatch(self):
        """An on_* event other than on_create/on_change/on_delete must declare its dispatch."""
        with pytest.raises(InvalidModelEvent, match=r"on_publish declares no dispatch"):

            @webhook_model
            class Post(Article):
                class webhooks:
                    on_publish = ModelEvent("article.published", state__now_eq="PUBLISHED")

    def test_dispatch_declared_after_connection(self, hook_app, receiver, models):
        """A trigger added to a connected event is connected too."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created")

        Post.webhooks.events["on_create"].dispatches_on_delete()  # type: ignore[attr-defined]
        deleted.send(Post, instance=Post())
        assert bodies(receiver, 1)[0]["event"] == "article.created"

    def test_connect_twice_sends_once(self, hook_app, receiver, models):
        """Connecting an event to the same model again does not duplicate webhooks."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created")

        Post.webhooks.events["on_create"].connect_model(Post)  # type: ignore[attr-defined]
        created.send(Post, instance=Post())
        assert len(settle(receiver, 1)) == 1

    def test_disconnect(self, hook_app, receiver):
        """A disconnected event sends nothing."""

        @webhook_model
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created")

        event = Post.webhooks.events["on_create"]  # type: ignore[attr-defined]
        assert event.models == [Post]
        event.disconnect_model(Post)
        assert event.models == []
        created.send(Post, instance=Post())
        assert settle(receiver, 0) == []


class TestTransactions:
    """signal_honors_transaction: sent after commit, dropped on rollback."""

    def define(self, models: Callable[[type], type], honors: bool | None) -> type:
        """A model whose on_create event has signal_honors_transaction=honors."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created", signal_honors_transaction=honors)

                def payload(self, article):
                    return {"title": article.title}

        return Post

    def test_sent_after_commit(self, hook_app, receiver, models):
        """Inside a transaction nothing is sent until it commits."""
        post_model = self.define(models, True)
        with atomic():
            created.send(post_model, instance=post_model())
            assert settle(receiver, 0) == []
        assert bodies(receiver, 2)[1]["event"] == "article.created"

    def test_dropped_on_rollback(self, hook_app, receiver, models):
        """A rolled-back transaction sends nothing."""
        post_model = self.define(models, True)
        with atomic() as transaction:
            created.send(post_model, instance=post_model())
            transaction.rollback()
        assert settle(receiver, 0) == []

    def test_dropped_on_exception(self, hook_app, receiver, models):
        """A transaction ended by an exception sends nothing."""
        post_model = self.define(models, True)

        def failing_save():
            with atomic():
                created.send(post_model, instance=post_model())
                raise RuntimeError("constraint violated")

        with pytest.raises(RuntimeError):
            failing_save()
        assert settle(receiver, 0) == []

    def test_data_is_taken_at_the_change(self, hook_app, receiver, models):
        """The message describes the instance as it was when the hook fired."""
        post_model = self.define(models, True)
        with atomic():
            post = post_model(title="First")
            created.send(post_model, instance=post)
            post.title = "Second"
        assert bodies(receiver, 1)[0]["data"] == {"title": "First"}

    def test_without_transaction_sends_at_once(self, hook_app, receiver, models):
        """With no open transaction the event is sent at once."""
        post_model = self.define(models, True)
        created.send(post_model, instance=post_model())
        assert len(receiver.received) == 1

    def test_setting(self, make_app, receiver, models):
        """THORN_SIGNAL_HONORS_TRANSACTION applies when the event leaves it None."""
        make_app(
            {
                "THORN_SUBSCRIBERS": {"*": receiver.url()},
                "THORN_SIGNAL_HONORS_TRANSACTION": True,
            },
            set_as_current=True,
        )
        post_model = self.define(models, None)
        with atomic() as transaction:
            created.send(post_model, instance=post_model())
            transaction.rollback()
        assert settle(receiver, 0) == []

    def test_option_overrides_setting(self, make_app, receiver, models):
        """signal_honors_transaction=False sends at once even when the setting is on."""
        make_app(
            {
                "THORN_SUBSCRIBERS": {"*": receiver.url()},
                "THORN_SIGNAL_HONORS_TRANSACTION": True,
            },
            set_as_current=True,
        )
        post_model = self.define(models, False)
        with atomic() as transaction:
            created.send(post_model, instance=post_model())
            transaction.rollback()
        assert len(receiver.received) == 1

    def test_default_is_immediate(self, hook_app, receiver, models):
        """By default (setting False) the event does not wait for the transaction."""
        post_model = self.define(models, None)
        with atomic() as transaction:
            created.send(post_model, instance=post_model())
            assert len(receiver.received) == 1
            transaction.rollback()


class TestPropagateErrors:
    """propagate_errors=False keeps save() working when a webhook fails."""

    def define(self, models: Callable[[type], type], propagate: bool, **options: Any) -> type:
        """A model whose payload callback raises."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created", propagate_errors=propagate, **options)

                def payload(self, article):
                    raise LookupError("the payload failed")

        return Post

    def test_propagates_by_default(self, hook_app, models):
        """With propagate_errors=True the error reaches the code that sent the signal."""
        post_model = self.define(models, True)
        with pytest.raises(LookupError, match="payload failed"):
            created.send(post_model, instance=post_model())

    def test_swallowed_and_logged(self, hook_app, receiver, models, caplog):
        """With propagate_errors=False the error is logged and nothing is sent."""
        post_model = self.define(models, False)
        with caplog.at_level(logging.ERROR, logger="thorn_core.model_events"):
            created.send(post_model, instance=post_model())
        assert "propagate_errors=False" in caplog.text
        assert "payload failed" in caplog.text
        assert settle(receiver, 0) == []

    def test_serialization_error_swallowed(self, hook_app, receiver, models, caplog):
        """An unserializable payload is logged, not raised, with propagate_errors=False."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created", propagate_errors=False)

                def payload(self, article):
                    return {"tags": {"a", "b"}}

        with caplog.at_level(logging.ERROR, logger="thorn_core.model_events"):
            created.send(Post, instance=Post())
        assert "SerializationError" in caplog.text

    def test_serialization_error_propagates(self, hook_app, models):
        """An unserializable payload raises SerializationError with propagate_errors=True."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created")

                def payload(self, article):
                    return {"tags": {"a", "b"}}

        with pytest.raises(SerializationError):
            created.send(Post, instance=Post())

    def test_after_commit_swallowed(self, hook_app, receiver, models, caplog):
        """An error at commit time is swallowed too when propagate_errors=False."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_create = ModelEvent(
                    "article.created", propagate_errors=False, signal_honors_transaction=True
                )

                def payload(self, article):
                    return {"tags": {"a", "b"}}

        with caplog.at_level(logging.ERROR, logger="thorn_core.model_events"), atomic():
            created.send(Post, instance=Post())
        assert "SerializationError" in caplog.text

    def test_after_commit_propagates(self, hook_app, models):
        """An error at commit time propagates out of the commit when propagate_errors=True."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created", signal_honors_transaction=True)

                def payload(self, article):
                    return {"tags": {"a", "b"}}

        def save():
            with atomic():
                created.send(Post, instance=Post())

        with pytest.raises(SerializationError):
            save()


class TestManualSend:
    """Sending a model event by hand."""

    def test_send(self, hook_app, receiver, models):
        """send(instance=, data=) sends the wire format with the given data."""

        @models
        @webhook_model(reverse=model_reverser("article:detail", id="id"))
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created")

        on_create = Post.webhooks.events["on_create"]  # type: ignore[attr-defined]
        result = on_create.send(instance=Post(id=5), data={"x": 1}, sender=User(3))
        assert result.ok
        assert bodies(receiver, 1) == [
            {
                "event": "article.created",
                "ref": "https://example.com/articles/5/",
                "sender": 3,
                "data": {"x": 1},
            }
        ]

    def test_send_from_instance(self, hook_app, receiver, models):
        """send_from_instance takes payload, headers and sender from the model."""

        @models
        @webhook_model(sender_field="author")
        class Post(Article):
            class webhooks:
                on_publish = ModelEvent(
                    "article.published", state__eq="PUBLISHED"
                ).dispatches_on_change()

                def payload(self, article):
                    return {"title": article.title}

                def headers(self, article):
                    return {"X-Title": article.title}

        event = Post.webhooks["on_publish"]  # type: ignore[attr-defined]
        post = Post(author=User(9))
        assert not event.should_dispatch(post)
        event.send_from_instance(post, headers={"X-Extra": "1"})
        (received,) = receiver.wait_for(1, WAIT)
        assert received.json() == {
            "event": "article.published",
            "ref": None,
            "sender": 9,
            "data": {"title": "The Art"},
        }
        assert received.headers["x-title"] == "The Art"
        assert received.headers["x-extra"] == "1"

    def test_standalone_event(self, hook_app, receiver):
        """A ModelEvent used without a model reads webhook_payload() from the instance."""

        class Note:
            def webhook_payload(self):
                return {"text": "hi"}

        ModelEvent("note.created").send_from_instance(Note())
        assert bodies(receiver, 1)[0] == {
            "event": "note.created",
            "ref": None,
            "sender": None,
            "data": {"text": "hi"},
        }

    def test_explicit_app(self, make_app, receiver):
        """An event bound to an explicit app sends with it, not the current app."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url("/explicit")}})
        ModelEvent("note.created", app=app).send(Article(), data={})
        assert receiver.wait_for(1, WAIT)[0].path == "/explicit"


class TestWebhookModel:
    """The decorator and Model.webhooks."""

    def test_bare_and_called(self, hook_app, models):
        """@webhook_model, @webhook_model() and @webhook_model(options) all work."""

        for decorator in (webhook_model, webhook_model(), webhook_model(sender_field="author")):

            class Post(Article):
                class webhooks:
                    on_create = ModelEvent("article.created")

            decorated = models(decorator(Post))
            assert decorated is Post
            assert isinstance(Post.webhooks, ModelWebhooks)
            assert list(Post.webhooks.events) == ["on_create"]

    def test_events_mapping(self, hook_app, models):
        """Model.webhooks.events maps attribute names to the events."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created")
                on_change = ModelEvent("article.changed")
                on_delete = None

        events = Post.webhooks.events  # type: ignore[attr-defined]
        assert set(events) == {"on_create", "on_change"}
        assert events["on_create"].triggers[0].hook == "create"
        assert events["on_change"].triggers[0].hook == "change"
        assert Post.webhooks["on_change"] is events["on_change"]  # type: ignore[attr-defined]

    def test_event_keywords(self, hook_app, receiver, models):
        """on_* keywords of the decorator add events; a model needs no inner class."""

        @models
        @webhook_model(on_create=ModelEvent("thing.created"))
        class Thing:
            pass

        created.send(Thing, instance=Thing())
        assert bodies(receiver, 1)[0]["event"] == "thing.created"

    def test_event_options_win(self, hook_app, models):
        """An event's own sender_field and reverse win over the model's."""
        own = model_reverser("article:detail", id="id")

        @models
        @webhook_model(sender_field="author", reverse=lambda a: "https://example.com/")
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created", sender_field="editor", reverse=own)
                on_change = ModelEvent("article.changed")

        events = Post.webhooks.events  # type: ignore[attr-defined]
        assert events["on_create"].sender_field == "editor"
        assert events["on_create"].reverse is own
        assert events["on_change"].sender_field == "author"

    def test_inner_class_defaults(self, hook_app, models):
        """sender_field and reverse may be attributes of the inner class."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks:
                sender_field = "author"
                on_create = ModelEvent("article.created")

        assert Post.webhooks.events["on_create"].sender_field == "author"  # type: ignore[attr-defined]

    def test_inner_class_may_subclass_model_webhooks(self, hook_app, models):
        """An inner class deriving from ModelWebhooks is used as is."""

        @models
        @webhook_model
        class Post(Article):
            class webhooks(ModelWebhooks):
                on_create = ModelEvent("article.created")

        assert type(Post.webhooks).__qualname__.endswith("Post.webhooks")

    def test_webhooks_must_be_a_class(self):
        """A webhooks attribute that is not a class is refused."""
        with pytest.raises(InvalidModelEvent, match="must be a class"):

            @webhook_model
            class Post(Article):
                webhooks = (ModelEvent("article.created"),)

    def test_on_attribute_must_be_an_event(self):
        """An on_* attribute that is not a ModelEvent is refused."""
        with pytest.raises(InvalidModelEvent, match="must be a ModelEvent"):

            @webhook_model
            class Post(Article):
                class webhooks:
                    on_create = "article.created"

    def test_unknown_keyword(self):
        """A keyword that is neither an option nor an on_* event is a TypeError."""
        with pytest.raises(TypeError, match="sendr_field"):
            webhook_model(sendr_field="author")  # type: ignore[call-overload]

    def test_decorates_classes_only(self):
        """Decorating something that is not a class is a TypeError."""
        with pytest.raises(TypeError, match="decorates a class"):
            webhook_model()(lambda: None)  # type: ignore[type-var]

    def test_explicit_binding(self, hook_app, receiver, models):
        """webhook_model(binding=) connects through that binding and reverses with it."""
        binding = BlinkerBinding(urls={"article:detail": "https://other.example/{id}"})

        @models
        @webhook_model(binding=binding, reverse=model_reverser("article:detail", id="id"))
        class Post(Article):
            class webhooks:
                on_create = ModelEvent("article.created")

        assert Post.webhooks.events["on_create"].binding_for(Post) is binding  # type: ignore[attr-defined]
        created.send(Post, instance=Post(id=4))
        assert bodies(receiver, 1)[0]["ref"] == "https://other.example/4"
