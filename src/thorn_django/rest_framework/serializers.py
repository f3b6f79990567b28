"""The subscription serializer: fields checked by the core, the secret shown once."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.redelivery import delivery_summary
from thorn_core.subscriptions import check_subscription

from ..conf import get_app, get_subscriber_model
from ..models import DeliveryAttempt

__all__ = ["DeliveryAttemptSerializer", "SubscriberSerializer", "delivery_outcome"]


class SubscriberSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A subscription as the API shows it; ``hmac_secret`` only in the answer to its creation.

    ``event``, ``url``, ``content_type`` and ``hmac_digest`` are checked with
    :func:`thorn_core.subscriptions.check_subscription`, so the messages are the core's (the
    same as the Flask API's), one list per field.
    """

    uuid = serializers.UUIDField(read_only=True)
    event = serializers.CharField(max_length=200)
    url = serializers.CharField(max_length=2048)
    content_type = serializers.CharField(max_length=100, default=JSON_CONTENT_TYPE)
    hmac_digest = serializers.CharField(max_length=16, default="sha256")
    active = serializers.BooleanField(default=True)
    hmac_secret = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Refuse malformed patterns, hostile URLs, unknown content types and digests."""
        errors = check_subscription(get_app(), attrs)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Any:
        """Store a new subscription; its generated secret is part of this one answer."""
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
        return instance

    def to_representation(self, instance: Any) -> dict[str, Any]:
        """The subscription; the secret only right after creation."""
        data: dict[str, Any] = super().to_representation(instance)
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
