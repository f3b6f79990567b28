"""The models of ``thorn_django``: stored subscribers, the delivery log and the outbox."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.patterns import candidate_patterns
from thorn_core.signing import DIGESTS, generate_secret, normalize_digest
from thorn_core.subscribers import sender_key
from thorn_core.subscriptions import (
    MAX_CONTENT_TYPE_LENGTH,
    MAX_DIGEST_LENGTH,
    MAX_ENDPOINT_LENGTH,
    MAX_EVENT_LENGTH,
    MAX_URL_LENGTH,
    check_subscription,
)
from thorn_core.targeting import MAX_VERSION_LENGTH
from thorn_core.validators import display_url

from .fields import EncryptedSecretField

__all__ = [
    "AbstractSubscriber",
    "DeliveryAttempt",
    "FailureReset",
    "OutboxEvent",
    "Subscriber",
    "SubscriberQuerySet",
]

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
        max_length=MAX_EVENT_LENGTH,
        db_index=True,
        help_text="An event name (article.created) or a pattern: article.*, *.created or *.",
    )
    url = models.CharField(
        "URL", max_length=MAX_URL_LENGTH, help_text="Where the events are POSTed."
    )
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
    hmac_secret = EncryptedSecretField("HMAC secret", default=generate_secret, editable=False)
    previous_secrets = EncryptedSecretField(
        "previous secrets",
        blank=True,
        default="",
        editable=False,
        help_text="Older secrets that still sign until they expire (JSON), after a rotation.",
    )
    hmac_digest = models.CharField(
        "HMAC digest", max_length=MAX_DIGEST_LENGTH, choices=DIGEST_CHOICES, default="sha256"
    )
    content_type = models.CharField(
        "content type", max_length=MAX_CONTENT_TYPE_LENGTH, default=JSON_CONTENT_TYPE
    )
    active = models.BooleanField("active", default=True)
    filter = models.JSONField(
        "payload filter",
        null=True,
        blank=True,
        default=None,
        help_text='Deliver only the sends whose payload satisfies it: {"amount": {"$gte": 100}}.',
    )
    version = models.CharField(
        "version pin",
        max_length=MAX_VERSION_LENGTH,
        null=True,
        blank=True,
        default=None,
        help_text="Deliver only the sends of this version of the event type.",
    )
    rate_limit = models.FloatField(
        "rate limit",
        null=True,
        blank=True,
        help_text="Deliveries per second to this endpoint at most; empty: THORN_RATE_LIMIT.",
    )
    max_in_flight = models.PositiveIntegerField(
        "max in flight",
        null=True,
        blank=True,
        help_text="Deliveries to this endpoint in progress at once at most; "
        "empty: THORN_MAX_IN_FLIGHT.",
    )
    endpoint = models.CharField(
        "endpoint",
        max_length=MAX_ENDPOINT_LENGTH,
        null=True,
        blank=True,
        help_text="The endpoint whose health (circuit, limits) this subscription shares; "
        "empty: the URL's scheme, host and port.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    objects: ClassVar[SubscriberQuerySet] = SubscriberManager()  # type: ignore[assignment]

    class Meta:
        abstract = True
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.event} -> {display_url(self.url)}"

    def clean_fields(self, exclude: Any = None) -> None:
        """Spell the digest as Thorn does (``'SHA512'`` -> ``'sha512'``, as 1.x stored them)
        before the fields, and its choices, are checked."""
        self.hmac_digest = normalize_digest(self.hmac_digest) or self.hmac_digest
        super().clean_fields(exclude)

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
                "filter": self.filter,
                "version": self.version,
                "rate_limit": self.rate_limit,
                "max_in_flight": self.max_in_flight,
                "endpoint": self.endpoint,
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


class DeliveryAttempt(models.Model):
    """One attempt of one delivery (the delivery log, ``thorn_django.log.DjangoDeliveryLog``).

    The body is kept as sent, so that the delivery can be sent again; the request headers
    are kept without credentials, and the subscriber's secret is never stored here.
    """

    delivery_id = models.CharField("delivery id", max_length=64)
    event = models.CharField("event", max_length=200)
    subscriber_uuid = models.UUIDField("subscriber")
    url = models.CharField("URL", max_length=2048)
    attempt = models.PositiveIntegerField("attempt")
    ok = models.BooleanField("succeeded")
    retryable = models.BooleanField("retryable", default=False)
    status_code = models.PositiveIntegerField("status code", null=True, blank=True)
    error = models.TextField("error", null=True, blank=True)
    duration = models.FloatField("duration (s)", default=0.0)
    request_headers = models.JSONField("request headers", default=dict)
    body = models.BinaryField("body", default=b"")
    response_excerpt = models.TextField("response excerpt", blank=True, default="")
    next_retry_at = models.DateTimeField("next retry", null=True, blank=True)
    at = models.DateTimeField("at")

    class Meta:
        verbose_name = "delivery attempt"
        verbose_name_plural = "delivery attempts"
        ordering = ("-at", "-id")
        indexes = (
            models.Index(fields=["delivery_id"], name="thorn_attempt_delivery"),
            models.Index(fields=["subscriber_uuid", "at"], name="thorn_attempt_sub_at"),
            models.Index(fields=["subscriber_uuid", "ok", "at"], name="thorn_attempt_sub_ok_at"),
            models.Index(fields=["at"], name="thorn_attempt_at"),
        )

    def __str__(self) -> str:
        state = "ok" if self.ok else (self.error or f"HTTP {self.status_code}")
        return f"{self.event} #{self.attempt} -> {self.url}: {state}"


class FailureReset(models.Model):
    """Where a subscriber's failure streak starts again (it was re-enabled or switched off).

    Failures logged before ``at`` no longer count towards the failure limit.
    """

    subscriber_uuid = models.UUIDField("subscriber", unique=True)
    at = models.DateTimeField("reset at")

    class Meta:
        verbose_name = "failure streak reset"
        verbose_name_plural = "failure streak resets"

    def __str__(self) -> str:
        return f"{self.subscriber_uuid} reset at {self.at:%Y-%m-%d %H:%M:%S}"


class OutboxEvent(models.Model):
    """An event sent inside a transaction, stored in it; the relay dispatches it after commit.

    ``claimed_until``/``claimed_by`` are the relay's lease: a claimed event is not claimed
    again before the lease ends, and is claimed again after it when it was never marked done
    (the relay died), so nothing is lost.
    """

    message = models.JSONField("message")
    created_at = models.DateTimeField("created", default=now)
    claimed_until = models.DateTimeField("claimed until", null=True, blank=True)
    claimed_by = models.UUIDField("claimed by", null=True, blank=True)
    done_at = models.DateTimeField("done", null=True, blank=True)

    class Meta:
        verbose_name = "outbox event"
        verbose_name_plural = "outbox events"
        ordering = ("created_at", "id")
        indexes = (
            models.Index(fields=["done_at", "created_at"], name="thorn_outbox_pending"),
            models.Index(fields=["claimed_by"], name="thorn_outbox_claimed_by"),
        )

    def __str__(self) -> str:
        state = "done" if self.done_at else "pending"
        return f"{self.message.get('event', '?')} ({state})"
