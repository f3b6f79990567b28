"""The subscription serializer: fields checked by the core, URLs masked, the secret shown once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.utils import html

from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.ed25519 import public_key
from thorn_core.endpoints import health_by_key, subscription_health
from thorn_core.redelivery import delivery_summary
from thorn_core.subscriptions import REQUIRED_FIELDS, check_subscription, unmask_url
from thorn_core.validators import display_url

from ..conf import get_app, get_subscriber_model
from ..models import DeliveryAttempt

__all__ = ["DeliveryAttemptSerializer", "SubscriberSerializer", "delivery_outcome"]

#: What the raw-data form of the browsable API starts from (the pattern is replaced by the
#: first of ``THORN_EVENT_CHOICES`` when they are set).
EXAMPLE_URL = "https://example.com/webhook"


#: Where a list serializer leaves the statuses of a page's endpoints for its rows.
_HEALTH = "thorn_health"


class SubscriberListSerializer(serializers.ListSerializer):  # type: ignore[type-arg]
    """A page of subscriptions: the health of all their endpoints read in one call to the
    store (:func:`~thorn_core.endpoints.health_by_key`), not one per row."""

    def to_representation(self, data: Any) -> list[Any]:
        rows = list(data.all() if hasattr(data, "all") else data)
        self.context[_HEALTH] = health_by_key(get_app(), rows)
        return super().to_representation(rows)  # type: ignore[no-any-return]


class SubscriberSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A subscription as the API shows it: the URL with its password masked, ``hmac_secret``
    only in the answer to the request that set it (a creation, or an update that sends one).

    A JSON body is checked as submitted with
    :func:`thorn_core.subscriptions.check_subscription` (types, lengths, then values), so the
    messages are the core's (the same as the Flask API's), one list per field. The fields of
    Thorn 1.x answers are there too: ``id`` (the uuid), ``subscription`` (this resource's
    URL) and ``user`` (the owner's id). ``health`` (read-only) is the endpoint's circuit
    state, failure rate and next probe (:func:`thorn_core.endpoints.health_field`).
    """

    class Meta:
        list_serializer_class = SubscriberListSerializer

    uuid = serializers.UUIDField(read_only=True)
    id = serializers.UUIDField(source="uuid", read_only=True)
    subscription = serializers.HyperlinkedIdentityField(
        view_name="thorn:subscriber-detail", lookup_field="uuid"
    )
    event = serializers.CharField()
    url = serializers.CharField()
    content_type = serializers.CharField(default=JSON_CONTENT_TYPE)
    hmac_digest = serializers.CharField(default="sha256")
    hmac_secret = serializers.CharField(required=False, trim_whitespace=False)
    active = serializers.BooleanField(default=True)
    filter = serializers.JSONField(required=False, allow_null=True, default=None)
    version = serializers.CharField(required=False, allow_null=True, default=None)
    rate_limit = serializers.FloatField(required=False, allow_null=True, default=None)
    max_in_flight = serializers.IntegerField(required=False, allow_null=True, default=None)
    endpoint = serializers.CharField(required=False, allow_null=True, default=None)
    health = serializers.SerializerMethodField()
    public_key = serializers.SerializerMethodField()
    user = serializers.ReadOnlyField(source="user_id")
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def run_validation(self, data: Any = empty) -> Any:
        """Check a JSON body as submitted (a list for ``event`` is refused, never converted),
        then let the fields fill in the defaults; the URL sent back masked stays as stored."""
        self._checked = False
        if data is not empty and not html.is_html_input(data):
            if isinstance(data, Mapping) and self.instance is not None and "url" in data:
                data = {**data, "url": unmask_url(data["url"], self.instance.url)}
            self._refuse(data)
            self._checked = True
        return super().run_validation(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Check the browsable API's form input (strings converted by the fields) likewise."""
        if not getattr(self, "_checked", False):
            if self.instance is not None and "url" in attrs:
                attrs["url"] = unmask_url(attrs["url"], self.instance.url)
            self._refuse(attrs)
        return attrs

    def _refuse(self, data: Any) -> None:
        """Raise the core's messages by field, if it finds anything wrong with ``data``."""
        required = () if self.partial else REQUIRED_FIELDS
        stored_event = None if self.instance is None else self.instance.event
        errors = check_subscription(get_app(), data, required=required, stored_event=stored_event)
        if errors:
            raise serializers.ValidationError(errors)

    def get_initial(self) -> dict[str, Any]:
        """Valid values to start a new subscription from; the secret is left to the server."""
        if hasattr(self, "initial_data"):
            return super().get_initial()  # type: ignore[no-any-return]
        choices = get_app().settings.event_choices
        return {
            "event": choices[0] if choices else "*",
            "url": EXAMPLE_URL,
            "content_type": JSON_CONTENT_TYPE,
            "hmac_digest": "sha256",
            "active": True,
        }

    def create(self, validated_data: dict[str, Any]) -> Any:
        """Store a new subscription; its secret (chosen or generated) is part of this answer."""
        instance = get_subscriber_model()._default_manager.create(**validated_data)
        self._show_secret = True
        return instance

    def update(self, instance: Any, validated_data: dict[str, Any]) -> Any:
        """Change the given fields of a subscription; switching it on re-enables it."""
        was_active = instance.active
        for name, value in validated_data.items():
            setattr(instance, name, value)
        instance.save()
        if instance.active and not was_active:
            get_app().reactivate_subscriber(instance.as_subscriber())
        self._show_secret = "hmac_secret" in validated_data
        return instance

    def get_public_key(self, instance: Any) -> str | None:
        """The ``whpk_`` key receivers verify ``v1a`` signatures with; None for HMAC secrets."""
        return public_key(instance.hmac_secret)

    def get_health(self, instance: Any) -> dict[str, Any]:
        """The endpoint's health: from the page's batch in a list, else read for this row."""
        return subscription_health(get_app(), instance, self.context.get(_HEALTH))

    def to_representation(self, instance: Any) -> dict[str, Any]:
        """The subscription, its URL masked; the secret only right after it was set."""
        data: dict[str, Any] = super().to_representation(instance)
        data["url"] = display_url(data["url"])
        if not getattr(self, "_show_secret", False):
            data.pop("hmac_secret", None)
        return data


class DeliveryAttemptSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """One logged attempt: outcome, timing and a response excerpt (not the body sent)."""

    class Meta:
        model = DeliveryAttempt
        fields = (
            "delivery_id",
            "event",
            "url",
            "attempt",
            "ok",
            "retryable",
            "status_code",
            "error",
            "duration",
            "response_excerpt",
            "next_retry_at",
            "at",
        )
        read_only_fields = fields


#: What the API answers about one redelivered delivery (the core's shape).
delivery_outcome = delivery_summary
