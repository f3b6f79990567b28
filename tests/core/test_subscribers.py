"""Subscribers: validation, dict round trips, and every form THORN_SUBSCRIBERS accepts."""

from __future__ import annotations

import uuid

import pytest

from thorn_core import (
    ImproperlyConfigured,
    InvalidEventName,
    InvalidPattern,
    InvalidSubscriber,
    InvalidURL,
    Subscriber,
    Thorn,
)
from thorn_core.subscribers import StaticSubscribers, accepts_sender, sender_key

URL = "https://hooks.example.com/thorn"


class TestSubscriber:
    """Building and checking one Subscriber."""

    def test_defaults(self):
        """A subscriber needs only a URL: it gets every event, JSON, sha256 and a new secret."""
        sub = Subscriber(url=URL)

        assert sub.event == "*"
        assert sub.content_type == "application/json"
        assert sub.hmac_digest == "sha256"
        assert sub.active is True
        assert sub.user is None
        assert isinstance(sub.uuid, uuid.UUID)
        assert sub.hmac_secret.startswith("whsec_")
        assert Subscriber(url=URL).hmac_secret != sub.hmac_secret

    def test_secret_not_in_repr(self):
        """The secret never shows in the repr (and so in logs)."""
        sub = Subscriber(url=URL, hmac_secret="do-not-log")

        assert "do-not-log" not in repr(sub)

    @pytest.mark.parametrize("url", ["not a url", "/relative/path", "http://", 42])
    def test_bad_url(self, url):
        """A malformed URL raises InvalidURL."""
        with pytest.raises(InvalidURL):
            Subscriber(url=url)

    @pytest.mark.parametrize("pattern", ["user..created", "us*er", "*.user.*", ""])
    def test_bad_pattern(self, pattern):
        """A malformed event pattern raises InvalidPattern."""
        with pytest.raises(InvalidPattern):
            Subscriber(url=URL, event=pattern)

    def test_bad_digest(self):
        """An unsupported digest raises InvalidSubscriber naming the choices."""
        with pytest.raises(InvalidSubscriber, match=r"md5.*sha256"):
            Subscriber(url=URL, hmac_digest="md5")

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("hmac_secret", ""),
            ("content_type", "json"),
            ("active", "yes"),
            ("uuid", "not-a-uuid"),
        ],
    )
    def test_bad_fields(self, field, value):
        """Other bad fields raise InvalidSubscriber."""
        with pytest.raises(InvalidSubscriber):
            Subscriber(url=URL, **{field: value})

    def test_uuid_from_string(self):
        """A uuid given as a string is converted."""
        ident = uuid.uuid4()

        assert Subscriber(url=URL, uuid=str(ident)).uuid == ident


class TestDicts:
    """from_dict and as_dict."""

    def test_round_trip(self):
        """as_dict() gives a JSON-friendly dict that from_dict() turns back into the subscriber."""
        sub = Subscriber(
            url=URL,
            event="user.*",
            user=3,
            hmac_secret="s",
            hmac_digest="sha512",
            content_type="application/x-www-form-urlencoded",
            active=False,
        )

        data = sub.as_dict()

        assert data["uuid"] == str(sub.uuid)
        assert data["hmac_secret"] == "s"
        assert Subscriber.from_dict(data) == sub

    def test_unknown_key(self):
        """An unknown key raises InvalidSubscriber naming it."""
        with pytest.raises(InvalidSubscriber, match="colour"):
            Subscriber.from_dict({"url": URL, "colour": "red"})

    def test_missing_url(self):
        """A dict without a url raises InvalidSubscriber."""
        with pytest.raises(InvalidSubscriber, match="url"):
            Subscriber.from_dict({"event": "user.created"})

    def test_stable_uuid_without_one(self):
        """Without a uuid, the same event and URL give the same uuid every time."""
        first = Subscriber.from_dict({"url": URL}, event="user.created")
        second = Subscriber.from_dict({"url": URL}, event="user.created")
        other = Subscriber.from_dict({"url": URL}, event="user.deleted")

        assert first.uuid == second.uuid
        assert other.uuid != first.uuid

    def test_event_argument_fills_in_and_must_agree(self):
        """The event argument applies when the dict names none, and a different one is refused."""
        assert Subscriber.from_dict({"url": URL}, event="a.b").event == "a.b"
        assert Subscriber.from_dict({"url": URL, "event": "a.b"}, event="a.b").event == "a.b"
        with pytest.raises(InvalidSubscriber, match=r"listed under .a\.b."):
            Subscriber.from_dict({"url": URL, "event": "c.d"}, event="a.b")


def urls(static: StaticSubscribers, event: str, sender: object = None, **context) -> list[str]:
    """The URLs of the subscribers that ``static`` matches for an event."""
    return [s.url for s in static.matching(event, sender, context)]


class TestStaticSubscribers:
    """Every form of THORN_SUBSCRIBERS."""

    def test_stable_uuids_across_builds(self):
        """Two builds from the same setting give the same uuids (so Hook-Subscription is stable)."""
        setting = {"user.*": [URL, {"url": URL + "/2"}]}

        first = StaticSubscribers.from_setting(setting).matching("user.created")
        second = StaticSubscribers.from_setting(setting).matching("user.created")

        assert [s.uuid for s in first] == [s.uuid for s in second]
        assert len({s.uuid for s in first}) == 2

    def test_url(self):
        """A URL string subscribes it to the pattern."""
        static = StaticSubscribers.from_setting({"user.created": URL})

        assert urls(static, "user.created") == [URL]
        assert urls(static, "user.deleted") == []

    def test_list_of_urls(self):
        """A list of URLs subscribes each."""
        static = StaticSubscribers.from_setting({"user.*": [URL, URL + "/2"]})

        assert urls(static, "user.deleted") == [URL, URL + "/2"]

    def test_dict(self):
        """A dict sets the subscriber's fields; the pattern is the key."""
        static = StaticSubscribers.from_setting(
            {"user.*": {"url": URL, "hmac_secret": "s", "hmac_digest": "sha1"}}
        )

        (sub,) = static.matching("user.created")
        assert (sub.event, sub.hmac_secret, sub.hmac_digest) == ("user.*", "s", "sha1")

    def test_list_of_dicts(self):
        """A list of dicts (and URLs) subscribes each."""
        static = StaticSubscribers.from_setting(
            {"*.created": [{"url": URL}, {"url": URL + "/2", "user": 5}, URL + "/3"]}
        )

        assert urls(static, "order.created") == [URL, URL + "/3"]
        assert urls(static, "order.created", sender=5) == [URL, URL + "/2", URL + "/3"]

    def test_subscriber_objects(self):
        """Subscriber objects are used as they are."""
        sub = Subscriber(url=URL, event="user.*")
        static = StaticSubscribers.from_setting({"user.*": [sub]})

        assert static.matching("user.created") == [sub]

    def test_callable(self):
        """A callable is called on each matching send with (event, sender=..., **context)."""
        calls = []

        def lookup(event, sender=None, **context):
            calls.append((event, sender, context))
            return [URL + f"/{context['tenant']}"]

        static = StaticSubscribers.from_setting({"user.*": lookup})

        assert urls(static, "user.created", sender=9, tenant="acme") == [URL + "/acme"]
        assert urls(static, "order.created") == []
        assert calls == [("user.created", 9, {"tenant": "acme"})]

    def test_callable_returning_none(self):
        """A callable may return None for no subscribers."""
        static = StaticSubscribers.from_setting({"*": lambda event, sender=None: None})

        assert urls(static, "user.created") == []

    def test_generator_function(self):
        """A generator function's items (URLs or dicts) are the subscribers."""

        def lookup(event, sender=None, **context):
            yield URL
            yield {"url": URL + "/2", "active": False}
            yield {"url": URL + "/3", "user": 1}

        static = StaticSubscribers.from_setting({"user.created": lookup})

        assert urls(static, "user.created") == [URL]
        assert urls(static, "user.created", sender=1) == [URL, URL + "/3"]

    def test_inactive_are_skipped(self):
        """Inactive subscribers are never matched."""
        static = StaticSubscribers.from_setting({"*": [{"url": URL, "active": False}]})

        assert urls(static, "user.created") == []

    def test_empty_setting_is_falsy(self):
        """No subscribers at all makes the source falsy, so the app can skip it."""
        assert not StaticSubscribers.from_setting(None)
        assert not StaticSubscribers.from_setting({})
        assert StaticSubscribers.from_setting({"*": URL})

    @pytest.mark.parametrize(
        ("setting", "pattern"),
        [
            ({"user.created": 42}, "user.created"),
            ({"user.created": ["not a url"]}, "user.created"),
            ({"user.created": [[URL]]}, "user.created"),
            ({"user.created": {"url": URL, "colour": "red"}}, "user.created"),
            ({"user..created": URL}, "user..created"),
        ],
    )
    def test_invalid_value_names_the_pattern(self, setting, pattern):
        """An invalid THORN_SUBSCRIBERS entry raises ImproperlyConfigured naming its pattern."""
        with pytest.raises(ImproperlyConfigured, match=f"THORN_SUBSCRIBERS\\[{pattern!r}\\]"):
            StaticSubscribers.from_setting(setting)

    def test_routes_are_remembered_per_name(self):
        """Repeated lookups of one name give the same answer as the first, matched or not,
        and a deactivation made in between still counts."""
        static = StaticSubscribers.from_setting({"user.*": URL, "*.deleted": URL + "/d"})

        for _ in range(3):
            assert urls(static, "user.deleted") == [URL, URL + "/d"]
            assert urls(static, "order.created") == []
        static.deactivate(static.matching("user.deleted")[0], "gone")
        assert urls(static, "user.deleted") == [URL + "/d"]

    def test_invalid_name_raises_every_time(self):
        """A malformed event name is never remembered as having no subscribers."""
        static = StaticSubscribers.from_setting({"*": URL})

        for _ in range(2):
            with pytest.raises(InvalidEventName):
                static.matching("user..created")

    def test_unhashable_name_is_an_invalid_event_name(self):
        """A list given as the event name is refused as a name, not as a TypeError."""
        static = StaticSubscribers.from_setting({"*": URL})

        with pytest.raises(InvalidEventName):
            static.matching(["user", "created"])  # type: ignore[arg-type]

    def test_remembered_names_are_bounded(self):
        """Model events may format a name per instance: at most _ROUTES_KEPT names are
        remembered, and lookups stay right past that."""
        from thorn_core.subscribers import _ROUTES_KEPT

        static = StaticSubscribers.from_setting({"article.*": URL})

        for n in range(_ROUTES_KEPT + 10):
            assert urls(static, f"article.{n}.published") == [URL]
        assert len(static._routes) <= _ROUTES_KEPT
        assert urls(static, "article.1.published") == [URL]
        assert urls(static, "user.created") == []

    def test_invalid_value_fails_when_the_app_is_built(self):
        """The app checks THORN_SUBSCRIBERS at start-up."""
        with pytest.raises(ImproperlyConfigured, match="THORN_SUBSCRIBERS"):
            Thorn({"THORN_SUBSCRIBERS": {"user.created": 42}}, set_as_current=False)


class TestSenders:
    """Owned subscriptions and sender identifiers."""

    class Model:
        """An ORM-like object."""

        def __init__(self, pk: object) -> None:
            self.pk = pk

    def test_sender_key(self):
        """Ids stay as they are; objects give their pk."""
        assert sender_key(None) is None
        assert sender_key(4) == 4
        assert sender_key("u-4") == "u-4"
        assert sender_key(self.Model(4)) == 4

    def test_accepts_sender(self):
        """An owned subscriber accepts only its owner, by id or its string form."""
        owned = Subscriber(url=URL, user=4)
        public = Subscriber(url=URL)

        assert accepts_sender(owned, 4)
        assert accepts_sender(owned, "4")
        assert not accepts_sender(owned, 5)
        assert not accepts_sender(owned, None)
        assert accepts_sender(public, None)
        assert accepts_sender(public, 5)


class TestResolve:
    """resolve_subscribers reads what the sources answer and leaves it as it was."""

    def test_a_source_answer_is_not_changed(self):
        """A source that answers with the same (memoized) list or a tuple every time keeps
        it intact when a send adds subscribers of its own."""
        from thorn_core import Event
        from thorn_core.fanout import resolve_subscribers

        memo = [Subscriber(event="*", url=URL)]
        kept = list(memo)

        class Memoized:
            def matching(self, event, sender=None, context=None):
                return memo

        class Frozen:
            def matching(self, event, sender=None, context=None):
                return (Subscriber(event="*", url=URL + "/t"),)

        app = Thorn({"THORN_DISPATCHER": "disabled"}, set_as_current=False)
        app.add_subscriber_source(Memoized())
        app.add_subscriber_source(Frozen())
        event = Event("user.created", app=app, subscribers=[URL + "/extra"])

        for _ in range(3):
            found = resolve_subscribers(app, event.prepare({}, app=app))
            assert [s.url for s in found] == [URL, URL + "/t", URL + "/extra"]
        assert memo == kept
