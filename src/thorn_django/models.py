"""The stored ``Subscriber`` model: one row per subscription, matched by one indexed query."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.patterns import candidate_patterns
from thorn_core.signing import DIGESTS, generate_secret
from thorn_core.subscribers import sender_key
from thorn_core.subscriptions import check_subscription

__all__ = ["AbstractSubscriber", "Subscriber", "SubscriberQuerySet"]

DIGEST_CHOICES = [(name, name) for name in sorted(DIGESTS)]


class SubscriberQuerySet(models.QuerySet["AbstractSubscriber"]):
    """Queries over subscribers."""

    def matching(self, event: str, user: Any = None) -> SubscriberQuerySet:
        """The active subscriptions receiving ``event`` sent by ``user`` (a user, an id or None).

        One indexed query: ``event IN candidate_patterns(event)``, active, and owned by nobody
        or by ``user``. Subscriptions owned by a user never match an event without a sender.

        Raises:
            thorn_core.InvalidEventName: ``event`` is not a valid event name.
        """
        query = self.filter(event__in=candidate_patterns(event), active=True)
        owner = Q(user__isnull=True)
        key = _user_key(self.model, user)
        if key is not None:
            owner |= Q(user=key)
        return query.filter(owner)

    def owned_by(self, user: Any) -> SubscriberQuerySet:
        """The subscriptions of ``user`` (none for an anonymous user)."""
        if user is None or not getattr(user, "is_authenticated", True):
            return self.none()
        return self.filter(user=user)


def _user_key(model: type[models.Model], user: Any) -> Any:
    """The primary key ``user`` stands for, or None when it cannot be a user of this model."""
    key = sender_key(user)
    if key is None:
        return None
    target = model._meta.get_field("user").target_field  # type: ignore[union-attr]
    try:
        return target.to_python(key)
    except ValidationError:
        return None


SubscriberManager = models.Manager.from_queryset(SubscriberQuerySet)


class AbstractSubscriber(models.Model):
    """The fields and behaviour of a stored subscriber; subclass it for a custom model.

    ``full_clean()`` checks the pattern (and ``THORN_EVENT_CHOICES``), the URL against the
    recipient validators, the content type and digest, with the same messages as the API.
    """

    uuid = models.UUIDField("UUID", default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(
        "event pattern",
        max_length=200,
        db_index=True,
        help_text="An event name (article.created) or a pattern: article.*, *.created or *.",
    )
    url = models.CharField("URL", max_length=2048, help_text="Where the events are POSTed.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="user",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="%(app_label)s_%(class)s_set",
        related_query_name="%(app_label)s_%(class)s",
        help_text="The owner: receives only the events sent with this user as sender.",
    )
    hmac_secret = models.CharField(
        "HMAC secret", max_length=255, default=generate_secret, editable=False
    )
    hmac_digest = models.CharField(
        "HMAC digest", max_length=16, choices=DIGEST_CHOICES, default="sha256"
    )
    content_type = models.CharField("content type", max_length=100, default=JSON_CONTENT_TYPE)
    active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    objects: ClassVar[SubscriberQuerySet] = SubscriberManager()  # type: ignore[assignment]

    class Meta:
        abstract = True
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.event} -> {self.url}"

    def clean(self) -> None:
        """Refuse what delivery would refuse: a malformed pattern, a hostile URL, a bad type."""
        from .conf import get_app

        super().clean()
        errors = check_subscription(
            get_app(),
            {
                "event": self.event,
                "url": self.url,
                "content_type": self.content_type,
                "hmac_digest": self.hmac_digest,
            },
        )
        if errors:
            raise ValidationError(errors)

    def as_subscriber(self) -> Any:
        """This row as a core :class:`~thorn_core.Subscriber` value."""
        from .source import subscriber_from_model

        return subscriber_from_model(self)


class Subscriber(AbstractSubscriber):
    """A subscription stored in the database (``thorn_django.Subscriber``)."""

    class Meta(AbstractSubscriber.Meta):
        verbose_name = "subscriber"
        verbose_name_plural = "subscribers"
