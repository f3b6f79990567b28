"""Admin: subscribers (test ping, redelivery, re-enabling) and the delivery log, read-only."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from thorn_core.exceptions import ThornError
from thorn_core.ping import ping
from thorn_core.redelivery import RedeliveryError, redeliver, redeliver_failed

from ._cli import outcome
from .conf import get_app
from .models import DeliveryAttempt, OutboxEvent, Subscriber
from .source import subscriber_from_model

__all__ = ["DeliveryAttemptAdmin", "OutboxEventAdmin", "SubscriberAdmin"]


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Subscribers in the admin; register it for a custom ``THORN_SUBSCRIBER_MODEL`` too.

    The secret never appears in lists; the change page shows it read-only. Switching
    ``active`` back on (the form or the action) re-enables the subscriber: its failure
    count starts again.
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
    actions = ("send_test_ping", "redeliver_failed_deliveries", "reenable")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Save; a subscriber switched back on is re-enabled through the app."""
        super().save_model(request, obj, form, change)
        if change and obj.active and "active" in form.changed_data:
            get_app().reactivate_subscriber(subscriber_from_model(obj))

    @admin.action(
        description="Send a test ping to the selected subscribers", permissions=["change"]
    )
    def send_test_ping(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Deliver a ``thorn.ping`` event to each selected subscriber now and report the outcome."""
        app = get_app()
        for row in queryset:
            try:
                delivery = ping(app, subscriber_from_model(row))
            except ThornError as exc:
                self.message_user(request, f"{row.url}: not sent ({exc}).", messages.ERROR)
                continue
            level = messages.SUCCESS if delivery.ok else messages.ERROR
            self.message_user(request, f"{row.url}: {outcome(delivery)}.", level)

    @admin.action(
        description="Redeliver the failed deliveries of the selected subscribers",
        permissions=["change"],
    )
    def redeliver_failed_deliveries(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Send again every delivery whose latest attempt failed, per subscriber."""
        app = get_app()
        for row in queryset:
            try:
                deliveries = redeliver_failed(app, str(row.uuid))
            except RedeliveryError as exc:
                self.message_user(request, f"{row.url}: not sent ({exc}).", messages.ERROR)
                continue
            failed = sum(not delivery.ok for delivery in deliveries)
            level = messages.ERROR if failed else messages.SUCCESS
            self.message_user(
                request,
                f"{row.url}: {len(deliveries)} redelivered, {len(deliveries) - failed} "
                f"delivered, {failed} failed.",
                level,
            )

    @admin.action(description="Re-enable the selected subscribers", permissions=["change"])
    def reenable(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Switch the selected subscribers back on; their failure counts start again."""
        app = get_app()
        count = 0
        for row in queryset:
            app.reactivate_subscriber(subscriber_from_model(row))
            count += 1
        self.message_user(request, f"Re-enabled {count} subscribers.", messages.SUCCESS)


class _ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows written by Thorn: viewed, never added or changed in the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(_ReadOnly):
    """The delivery log: every attempt, filtered by outcome, event and time.

    The request headers are kept without credentials and the secret is never logged; the
    body sent is shown as text. The action sends the selected deliveries again.
    """

    list_display = (
        "at",
        "event",
        "url",
        "attempt",
        "ok",
        "status_code",
        "short_error",
        "duration",
        "subscriber_uuid",
    )
    list_filter = ("ok", "retryable", "event", "status_code")
    search_fields = ("delivery_id", "subscriber_uuid", "url", "event")
    date_hierarchy = "at"
    fields = (
        "delivery_id",
        "event",
        "subscriber_uuid",
        "url",
        "attempt",
        "at",
        "ok",
        "retryable",
        "status_code",
        "error",
        "duration",
        "next_retry_at",
        "request_headers",
        "body_text",
        "response_excerpt",
    )
    readonly_fields = fields
    actions = ("redeliver_selected",)

    @admin.display(description="error")
    def short_error(self, obj: DeliveryAttempt) -> str:
        """The error, cut for the list."""
        error = obj.error or ""
        return error if len(error) <= 80 else f"{error[:77]}..."

    @admin.display(description="body")
    def body_text(self, obj: DeliveryAttempt) -> str:
        """The body sent, as text."""
        return format_html("<pre>{}</pre>", bytes(obj.body or b"").decode("utf-8", "replace"))

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        """Redelivering sends to a subscription: it needs the right to change subscribers."""
        codename = f"{Subscriber._meta.app_label}.change_{Subscriber._meta.model_name}"
        return bool(request.user.has_perm(codename))

    @admin.action(description="Redeliver the selected deliveries", permissions=["redeliver"])
    def redeliver_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Send each selected delivery again (once per delivery id) and report the outcome."""
        app = get_app()
        for delivery_id in dict.fromkeys(queryset.values_list("delivery_id", flat=True)):
            try:
                delivery = redeliver(app, delivery_id)
            except RedeliveryError as exc:
                self.message_user(request, f"{delivery_id}: not sent ({exc}).", messages.ERROR)
                continue
            level = messages.SUCCESS if delivery.ok else messages.ERROR
            self.message_user(request, f"{delivery_id}: {outcome(delivery)}.", level)


@admin.register(OutboxEvent)
class OutboxEventAdmin(_ReadOnly):
    """The outbox: events stored in transactions, and whether the relay has sent them."""

    list_display = ("created_at", "event", "done_at", "claimed_until")
    list_filter = (("done_at", admin.EmptyFieldListFilter),)
    date_hierarchy = "created_at"
    fields = ("created_at", "message_shown", "claimed_until", "claimed_by", "done_at")
    readonly_fields = fields

    @admin.display(description="message")
    def message_shown(self, obj: OutboxEvent) -> str:
        """The stored message, with the secrets of explicit subscribers masked."""
        message = dict(obj.message)
        message["subscribers"] = [
            {**subscriber, "hmac_secret": "********"}
            if subscriber.get("hmac_secret")
            else subscriber
            for subscriber in message.get("subscribers") or ()
        ]
        return format_html("<pre>{}</pre>", json.dumps(message, indent=2, sort_keys=True))

    @admin.display(description="event")
    def event(self, obj: OutboxEvent) -> str:
        """The stored event's name."""
        return str(obj.message.get("event", "?"))
