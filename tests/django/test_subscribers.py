"""The stored Subscriber model: matching by one indexed query, validation, custom models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from thorn_core import Subscriber as CoreSubscriber
from thorn_django import get_app, get_subscriber_model
from thorn_django.models import Subscriber

from .testapp.models import CustomSubscriber

pytestmark = pytest.mark.django_db


class TestMatching:
    def test_patterns(self, subscribe: Callable[..., Any]) -> None:
        """Exact names, prefixes, suffixes and ``*`` match; others and inactive rows do not."""
        for pattern in ("user.created", "user.*", "*.created", "*", "user.changed", "order.*"):
            subscribe(pattern, f"https://example.com/{pattern}")
        subscribe("user.created", "https://example.com/off", active=False)
        found = Subscriber.objects.matching("user.created")
        assert sorted(s.event for s in found) == ["*", "*.created", "user.*", "user.created"]

    def test_one_query(self, subscribe: Callable[..., Any], django_assert_num_queries: Any) -> None:
        """Matching is a single ``event IN (...)`` query."""
        subscribe("user.*", "https://example.com/a")
        with django_assert_num_queries(1) as captured:
            assert len(list(Subscriber.objects.matching("user.profile.changed"))) == 1
        sql = captured.captured_queries[0]["sql"]
        assert " IN (" in sql

    def test_owned_subscriptions(
        self, subscribe: Callable[..., Any], make_user: Callable[[str], Any]
    ) -> None:
        """Owned rows match their user (object or id) only; unowned rows match everyone."""
        alice, bob = make_user("alice"), make_user("bob")
        subscribe("*", "https://example.com/alice", user=alice)
        subscribe("*", "https://example.com/all")
        assert [s.url for s in Subscriber.objects.matching("a.b")] == ["https://example.com/all"]
        assert len(Subscriber.objects.matching("a.b", user=alice)) == 2
        assert len(Subscriber.objects.matching("a.b", user=alice.pk)) == 2
        assert len(Subscriber.objects.matching("a.b", user=bob)) == 1
        assert len(Subscriber.objects.matching("a.b", user="not-a-pk")) == 1

    def test_source_converts_rows(self, subscribe: Callable[..., Any]) -> None:
        """The app's subscriber source returns core ``Subscriber`` values."""
        row = subscribe("user.created", "https://example.com/hook")
        (found,) = get_app().subscribers_for("user.created")
        assert isinstance(found, CoreSubscriber)
        assert (found.uuid, found.url, found.hmac_secret) == (row.uuid, row.url, row.hmac_secret)

    def test_invalid_rows_are_skipped(self, subscribe: Callable[..., Any]) -> None:
        """A row stored without validation and holding a malformed URL is skipped, not fatal."""
        subscribe("user.created", "not a url")
        assert list(get_app().subscribers_for("user.created")) == []


class TestValidation:
    def test_a_valid_subscriber(self) -> None:
        """A public https URL and a good pattern pass; a secret is generated."""
        row = Subscriber(event="article.*", url="https://example.com/hook")
        row.full_clean()
        assert row.hmac_secret.startswith("whsec_")

    @pytest.mark.parametrize(
        ("fields", "field", "message"),
        [
            ({"event": "user.*.created"}, "event", "middle segment"),
            ({"url": "http://10.0.0.1/hook"}, "url", "10.0.0.1"),
            ({"url": "http://127.0.0.1/hook"}, "url", "127.0.0.1"),
            ({"url": "ftp://example.com/"}, "url", "ftp"),
            ({"content_type": "text/csv"}, "content_type", "not supported"),
        ],
    )
    def test_refused(self, fields: dict[str, str], field: str, message: str) -> None:
        """Malformed patterns, internal or non-HTTP URLs and unknown types are refused."""
        values = {"event": "article.created", "url": "https://example.com/hook", **fields}
        with pytest.raises(ValidationError) as caught:
            Subscriber(**values).full_clean()
        assert message in " ".join(caught.value.message_dict[field])

    def test_event_choices(self, settings: Any) -> None:
        """``THORN_EVENT_CHOICES`` restricts the patterns one may subscribe to."""
        settings.THORN_EVENT_CHOICES = ["article.created", "article.*"]
        Subscriber(event="article.*", url="https://example.com/").full_clean()
        with pytest.raises(ValidationError) as caught:
            Subscriber(event="user.created", url="https://example.com/").full_clean()
        assert "not one of the events" in caught.value.message_dict["event"][0]


class TestCustomModel:
    def test_resolved_at_call_time(self, settings: Any) -> None:
        """``THORN_SUBSCRIBER_MODEL`` is read on every call, so overrides apply at once."""
        assert get_subscriber_model() is Subscriber
        settings.THORN_SUBSCRIBER_MODEL = "testapp.CustomSubscriber"
        assert get_subscriber_model() is CustomSubscriber

    def test_custom_rows_are_matched(self, settings: Any) -> None:
        """The source reads the custom model's rows."""
        settings.THORN_SUBSCRIBER_MODEL = "testapp.CustomSubscriber"
        CustomSubscriber.objects.create(event="*", url="https://example.com/team", team="ops")
        Subscriber.objects.create(event="*", url="https://example.com/ignored")
        assert [s.url for s in get_app().subscribers_for("x.y")] == ["https://example.com/team"]

    def test_unknown_model(self, settings: Any) -> None:
        """A model that is not installed is an ImproperlyConfigured naming it."""
        settings.THORN_SUBSCRIBER_MODEL = "nope.Missing"
        with pytest.raises(ImproperlyConfigured, match=r"nope\.Missing"):
            get_subscriber_model()
