"""Behaviour a Thorn 1.x site sees differently (or asks about) after the upgrade, on Django:
the rows of the table in docs/migrating.md that no other module shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import NoReverseMatch, reverse

from thorn_core.receiver import WebhookReceiver
from thorn_django.models import Subscriber

from .testapp.models import Article

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("loopback")]

WAIT = 5.0


class TestBulkDelete:
    """``QuerySet.delete()`` and ``update()`` on a model with events."""

    def test_queryset_delete_sends_one_event_per_row(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """Deleting three rows with one queryset sends three article.removed events."""
        for title in ("a", "b", "c"):
            Article.objects.create(title=title)
        subscribe("article.removed", receiver.url("/removed"))
        Article.objects.filter(title__in=["a", "b", "c"]).delete()

        received = receiver.wait_for(3, WAIT)
        assert sorted(r.json()["data"]["title"] for r in received) == ["a", "b", "c"]

    def test_queryset_update_sends_nothing(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """``update()`` sends no signal, so no event: only the marker save arrives."""
        article = Article.objects.create(title="a")
        subscribe("article.changed", receiver.url("/changed"))
        Article.objects.filter(pk=article.pk).update(title="b")
        article.refresh_from_db()
        article.save()  # the marker: delivered at once, after anything update() had sent

        (received,) = receiver.wait_for(1, WAIT)
        assert received.json()["data"]["title"] == "b"
        assert len(receiver.received) == 1


class TestApiUrlNames:
    """The subscription API's URL names live in the ``thorn`` namespace."""

    def test_url_names(self) -> None:
        """thorn:subscriber-list and thorn:subscriber-detail reverse; 1.x's names do not."""
        assert reverse("thorn:subscriber-list") == "/hooks/"
        assert reverse("thorn:subscriber-detail", kwargs={"uuid": "x"}) == "/hooks/x/"
        with pytest.raises(NoReverseMatch):
            reverse("webhook:list")


class TestStoredDigestCase:
    """A stored row whose digest is in capitals (written past validation) still delivers."""

    def test_upper_case_digest_row_delivers(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """'SHA512' in the table signs with SHA-512; the row is not skipped."""
        row = subscribe("article.created", receiver.url("/hook"))
        Subscriber.objects.filter(pk=row.pk).update(hmac_digest="SHA512")
        Article.objects.create(title="signed")

        (received,) = receiver.wait_for(1, WAIT)
        assert received.hook_hmac_valid(row.hmac_secret, "sha512")

    def test_full_clean_accepts_any_case(self) -> None:
        """full_clean() (the admin's check) takes 'SHA256' and stores 'sha256'."""
        row = Subscriber(event="article.created", url="https://example.com/hook")
        row.hmac_digest = "SHA256"
        row.full_clean()
        assert row.hmac_digest == "sha256"

    def test_full_clean_refuses_an_unknown_digest(self) -> None:
        """An unsupported digest in any case is still refused, under hmac_digest."""
        row = Subscriber(event="article.created", url="https://example.com/hook", hmac_digest="MD5")
        with pytest.raises(ValidationError) as caught:
            row.full_clean()
        assert "hmac_digest" in caught.value.message_dict
