"""Models of the test app: articles with model events, tags, notes, a custom subscriber model."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse

from thorn_core import ModelEvent, model_reverser, webhook_model
from thorn_django.models import AbstractSubscriber


class Tag(models.Model):
    """A tag an article can carry."""

    name = models.CharField(max_length=50)


@webhook_model(sender_field="author")
class Article(models.Model):
    """An article: created, changed, published, deleted and tagged events."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True)
    title = models.CharField(max_length=200)
    state = models.CharField(max_length=20, default="DRAFT")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE)
    tags = models.ManyToManyField(Tag, blank=True)

    class webhooks:
        on_create = ModelEvent("article.created")
        on_change = ModelEvent("article.changed")
        on_delete = ModelEvent("article.removed")
        on_publish = ModelEvent(
            "article.published", state__now_eq="PUBLISHED"
        ).dispatches_on_change()
        on_tagged = ModelEvent("article.tagged").dispatches_on_m2m_add("tags")
        on_untagged = ModelEvent("article.untagged").dispatches_on_m2m_remove("tags")
        on_cleared = ModelEvent("article.tags_cleared").dispatches_on_m2m_clear("tags")

        def payload(self, article: Article) -> dict[str, Any]:
            return {"title": article.title, "state": article.state}

    def get_absolute_url(self) -> str:
        return reverse("article-detail", kwargs={"uuid": self.uuid})


@webhook_model(sender_field="owner")
class Note(models.Model):
    """A note: events without ``now_`` filters (no row read before saving), a reversed ref."""

    text = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE)

    class webhooks:
        on_create = ModelEvent("note.created", reverse=model_reverser("author-detail", pk="pk"))
        on_change = ModelEvent("note.changed", signal_honors_transaction=False)

        def payload(self, note: Note) -> dict[str, Any]:
            return {"text": note.text}


class CustomSubscriber(AbstractSubscriber):
    """A project's own subscriber model, chosen with ``THORN_SUBSCRIBER_MODEL``."""

    team = models.CharField(max_length=50, blank=True)
