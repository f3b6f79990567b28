"""Admin for stored subscribers: list, search, filters, and a "send test ping" action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from thorn_core.exceptions import ThornError
from thorn_core.ping import ping

from .conf import get_app
from .models import Subscriber
from .source import subscriber_from_model

__all__ = ["SubscriberAdmin"]


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Subscribers in the admin; register it for a custom ``THORN_SUBSCRIBER_MODEL`` too.

    The secret never appears in lists; the change page shows it read-only.
    """

    list_display = ("event", "url", "user", "active", "content_type", "created_at")
    list_filter = ("active", "event", "content_type", "user")
    search_fields = ("event", "url", "uuid")
    readonly_fields = ("uuid", "hmac_secret", "created_at", "updated_at")
    fields = (
        "uuid",
        "event",
        "url",
        "user",
        "active",
        "content_type",
        "hmac_digest",
        "hmac_secret",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("user",)
    actions = ("send_test_ping",)

    @admin.action(description="Send a test ping to the selected subscribers")
    def send_test_ping(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Deliver a ``thorn.ping`` event to each selected subscriber now and report the outcome."""
        app = get_app()
        for row in queryset:
            try:
                delivery = ping(app, subscriber_from_model(row))
            except ThornError as exc:
                self.message_user(request, f"{row.url}: not sent ({exc}).", messages.ERROR)
                continue
            if delivery.ok:
                self.message_user(
                    request,
                    f"{row.url}: delivered (HTTP {delivery.status_code}).",
                    messages.SUCCESS,
                )
            else:
                reason = delivery.error or f"HTTP {delivery.status_code}"
                self.message_user(request, f"{row.url}: failed ({reason}).", messages.ERROR)
