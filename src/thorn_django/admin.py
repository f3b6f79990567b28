"""Admin: subscribers (test ping, redelivery, re-enabling) and the delivery log, read-only.

Credentials in subscriber URLs are masked wherever the admin shows a URL (lists, read-only
pages, messages, search); the change form keeps them without showing them again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.text import smart_split, unescape_string_literal
from django.views.decorators.http import require_POST

from thorn_core.endpoints import health_by_key, subscription_health
from thorn_core.exceptions import ThornError
from thorn_core.log import masked_headers
from thorn_core.ping import ping
from thorn_core.redelivery import RedeliveryError, redeliver, redeliver_failed
from thorn_core.subscriptions import check_subscription
from thorn_core.validators import MASK, display_url

from ._cli import outcome
from .conf import get_app, get_subscriber_model
from .models import DeliveryAttempt, OutboxEvent, Subscriber
from .source import StoredSubscribers, subscriber_from_model

__all__ = ["DeliveryAttemptAdmin", "OutboxEventAdmin", "SubscriberAdmin", "SubscriberAdminForm"]

#: The fields of a subscription the core checks (``check_subscription``).
_CHECKED_FIELDS = (
    "event",
    "url",
    "content_type",
    "hmac_secret",
    "hmac_digest",
    "filter",
    "version",
    "rate_limit",
    "max_in_flight",
    "endpoint",
)


def _shown_url(url: str) -> str:
    return display_url(url or "")


class SubscriberAdminForm(forms.ModelForm):  # type: ignore[type-arg]
    """The subscriber form: checked by the core, and credentials in the URL never shown again.

    A stored URL's credentials are shown masked (``https://ada:***@host/``); submitting the
    URL as shown keeps them. A changed URL is taken as typed, so credentials are typed again
    with it, and one that still holds the mask is refused. Every field goes through
    :func:`~thorn_core.subscriptions.check_subscription`, so what delivery would refuse is a
    form error.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self._stored_url()
        if stored and "url" in self.fields:
            self.initial["url"] = display_url(stored)

    def _stored_url(self) -> str | None:
        return str(self.instance.url) if self.instance.pk and self.instance.url else None

    def clean_url(self) -> str:
        """The stored URL when the masked one comes back unchanged; the typed one otherwise."""
        url = str(self.cleaned_data["url"])
        stored = self._stored_url()
        if stored is None or url == stored:
            return url
        shown = display_url(stored)
        if url == shown:
            return stored
        if shown != stored and MASK in url:
            raise ValidationError(
                f"The URL still holds {MASK} where a credential was masked: type the "
                "credentials again with the new URL, or submit the URL as shown to keep them.",
                code="masked",
            )
        return url

    def clean(self) -> dict[str, Any]:
        """Check the submitted subscription as delivery would (the core's checks)."""
        cleaned: dict[str, Any] = super().clean() or {}
        present = {name: cleaned[name] for name in _CHECKED_FIELDS if name in cleaned}
        for name, problems in check_subscription(get_app(), present).items():
            self.add_error(name, problems)
        return cleaned

    def add_error(self, field: str | None, error: Any) -> None:
        """Add ``error``, unless its field has errors already; one for a field that is not
        on the form becomes a form-wide error naming the field.

        The first problem found with a field is the one shown: ``AbstractSubscriber.clean()``
        runs the core's check again after :meth:`clean`, on an instance where a refused
        value is missing (it would add "invalid URL ''"). A custom admin may leave a checked
        field off the form.
        """
        error = error if isinstance(error, ValidationError) else ValidationError(error)
        by_field: Mapping[str, Sequence[ValidationError]] = (
            error.error_dict
            if hasattr(error, "error_dict")
            else {field or NON_FIELD_ERRORS: error.error_list}
        )
        for name, errors in by_field.items():
            if name != NON_FIELD_ERRORS and name not in self.fields:
                errors = [ValidationError(f"{name}: {' '.join(e.messages)}") for e in errors]
                name = NON_FIELD_ERRORS
            known = self._errors.get(name, ()) if self._errors is not None else ()
            if name != NON_FIELD_ERRORS and known:
                continue
            fresh = [e for e in errors if " ".join(e.messages) not in known]
            if fresh:
                super().add_error(None if name == NON_FIELD_ERRORS else name, fresh)


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Subscribers in the admin; register it for a custom ``THORN_SUBSCRIBER_MODEL`` too.

    The secret never appears in lists, and URLs are shown with their credentials masked.
    The change page shows the secret read-only to users who may change the subscriber, and
    masked to those who may only view it. Switching ``active`` back on (the form or the
    action) re-enables the subscriber: its failure count starts again.
    """

    form = SubscriberAdminForm
    list_display = (
        "event",
        "shown_url",
        "user",
        "active",
        "content_type",
        "health",
        "created_at",
    )
    list_filter = ("active", "event", "content_type", "user")
    search_fields = ("event", "url", "uuid")
    readonly_fields = (
        "uuid",
        "hmac_secret",
        "created_at",
        "updated_at",
        "shown_url",
        "shown_secret",
        "health",
    )
    fields = (
        "uuid",
        "event",
        "url",
        "user",
        "active",
        "content_type",
        "hmac_digest",
        "hmac_secret",
        "filter",
        "version",
        "rate_limit",
        "max_in_flight",
        "endpoint",
        "health",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("user",)
    actions = ("send_test_ping", "redeliver_failed_deliveries", "reenable", "rotate_secret")

    @admin.display(description="URL", ordering="url")
    def shown_url(self, obj: Any) -> str:
        """The URL with its credentials masked."""
        return _shown_url(obj.url)

    @admin.display(description="HMAC secret")
    def shown_secret(self, obj: Any) -> str:
        """The secret, masked: for users who may only view the subscriber."""
        return MASK if obj.hmac_secret else ""

    @admin.display(description="endpoint health")
    def health(self, obj: Any) -> str:
        """The endpoint's circuit state and failure rate, and the next probe when open; a
        list page reads every row's in one call (:class:`_HealthChangeList`)."""
        if obj is None or obj.pk is None:
            return "-"
        field = subscription_health(get_app(), obj, getattr(obj, _HEALTH, None))
        shown = f"{field['state'].replace('_', '-')} ({field['failure_rate']:.0%} failed)"
        if field["next_probe_at"] is not None:
            shown += f", next probe {field['next_probe_at'][:19].replace('T', ' ')} UTC"
        return shown

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """The change list that reads the health of a page's endpoints at once."""
        return _HealthChangeList

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Sequence[Any]:
        """For a user who may only view, the URL and the secret are shown masked."""
        fields = super().get_fields(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fields
        masked = {"url": "shown_url", "hmac_secret": "shown_secret"}
        return [masked.get(name, name) for name in fields]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Search as usual, but never by what the URLs mask: no row is found by a password."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        terms = [
            unescape_string_literal(bit) if bit[:1] in "\"'" and bit[0] == bit[-1] else bit
            for bit in smart_split(search_term)
        ]
        terms = [term.lower() for term in terms if term]
        if not terms or "url" not in self.get_search_fields(request):
            return found, may_have_duplicates
        hidden = []
        suspects = found.filter(Q(url__contains="@") | Q(url__contains="="))
        for pk, event, uuid, url in suspects.values_list("pk", "event", "uuid", "url"):
            shown = f"{event}\n{uuid}\n{display_url(url)}".lower()
            if any(term in url.lower() and term not in shown for term in terms):
                hidden.append(pk)
        return (found.exclude(pk__in=hidden) if hidden else found), may_have_duplicates

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
            shown = _shown_url(row.url)
            try:
                delivery = ping(app, subscriber_from_model(row))
            except ThornError as exc:
                self.message_user(request, f"Ping to {shown}: not sent ({exc}).", messages.ERROR)
                continue
            level = messages.SUCCESS if delivery.ok else messages.ERROR
            self.message_user(request, f"Ping to {shown}: {outcome(delivery)}.", level)

    @admin.action(
        description="Redeliver the failed deliveries of the selected subscribers",
        permissions=["change"],
    )
    def redeliver_failed_deliveries(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Send again every delivery whose latest attempt failed, per subscriber."""
        app = get_app()
        for row in queryset:
            shown = _shown_url(row.url)
            try:
                deliveries = redeliver_failed(app, str(row.uuid))
            except RedeliveryError as exc:
                self.message_user(
                    request, f"Redelivery to {shown}: not sent ({exc}).", messages.ERROR
                )
                continue
            failed = sum(not delivery.ok for delivery in deliveries)
            level = messages.ERROR if failed else messages.SUCCESS
            self.message_user(
                request,
                f"Redelivery to {shown}: {len(deliveries)} redelivered, "
                f"{len(deliveries) - failed} delivered, {failed} failed.",
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

    @admin.action(
        description="Rotate the secret of the selected subscribers (old one kept 24 h)",
        permissions=["change"],
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Give each selected subscriber a new secret; the old one signs for a day more.

        The message never holds a secret (messages are stored): the change page shows it.
        """
        source = StoredSubscribers()
        for row in queryset:
            shown = _shown_url(row.url)
            try:
                rotated = source.rotate(row)
            except ThornError as exc:
                self.message_user(request, f"{shown}: not rotated ({exc}).", messages.ERROR)
                continue
            until = max(s.expires_at for s in rotated.previous_secrets if s.expires_at)
            self.message_user(
                request,
                f"{shown}: new secret (see its page); the old one signs until "
                f"{until:%Y-%m-%d %H:%M} UTC.",
                messages.SUCCESS,
            )


#: The attribute where a change list leaves a page's endpoint statuses on each row.
_HEALTH = "_thorn_health"


class _HealthChangeList(ChangeList):
    """A subscriber change list: the statuses of the page's endpoints are read in one call
    to the health store (:func:`~thorn_core.endpoints.health_by_key`), not one per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = list(self.result_list)
        statuses = health_by_key(get_app(), rows)
        for row in rows:  # the objects of the evaluated page, which the list then shows
            setattr(row, _HEALTH, statuses)


class _ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows written by Thorn: viewed, never added, changed or deleted in the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(_ReadOnly):
    """The delivery log: every attempt, filtered by outcome, event and time.

    URLs are shown with their credentials masked, durations in milliseconds, the request
    headers as indented JSON (credential headers masked; the signature headers shown, as
    the receiver saw them), and the body sent as text. An attempt's page has a Redeliver
    button, and the action sends the selected deliveries again; both need the right to
    change subscribers.
    """

    change_form_template = "admin/thorn_django/deliveryattempt/change_form.html"
    list_display = (
        "at",
        "event",
        "shown_url",
        "attempt",
        "ok",
        "status_code",
        "short_error",
        "duration_ms",
        "subscriber_uuid",
    )
    list_filter = ("ok", "retryable", "event", "status_code")
    search_fields = ("delivery_id", "subscriber_uuid", "url", "event")
    date_hierarchy = "at"
    fields = (
        "delivery_id",
        "event",
        "subscriber_uuid",
        "shown_url",
        "attempt",
        "at",
        "ok",
        "retryable",
        "status_code",
        "error",
        "duration_ms",
        "next_retry_at",
        "headers_shown",
        "body_text",
        "response_excerpt",
    )
    readonly_fields = fields
    actions = ("redeliver_selected",)

    @admin.display(description="URL", ordering="url")
    def shown_url(self, obj: DeliveryAttempt) -> str:
        """The URL with its credentials masked (the log stores it masked already)."""
        return _shown_url(obj.url)

    @admin.display(description="error")
    def short_error(self, obj: DeliveryAttempt) -> str:
        """The error, cut for the list."""
        error = obj.error or ""
        return error if len(error) <= 80 else f"{error[:77]}..."

    @admin.display(description="duration", ordering="duration")
    def duration_ms(self, obj: DeliveryAttempt) -> str:
        """The attempt's duration in milliseconds."""
        return f"{obj.duration * 1000:,.0f} ms"

    @admin.display(description="request headers")
    def headers_shown(self, obj: DeliveryAttempt) -> str:
        """The request headers as indented JSON, credentials masked."""
        headers = masked_headers(obj.request_headers or {})
        return format_html("<pre>{}</pre>", json.dumps(headers, indent=2, sort_keys=True))

    @admin.display(description="body")
    def body_text(self, obj: DeliveryAttempt) -> str:
        """The body sent, as text."""
        return format_html("<pre>{}</pre>", bytes(obj.body or b"").decode("utf-8", "replace"))

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        """Redelivering sends to a subscription: it needs the right to change subscribers
        (of ``THORN_SUBSCRIBER_MODEL`` when set)."""
        opts = get_subscriber_model()._meta
        return bool(request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}"))

    def _redeliver(self, request: HttpRequest, delivery_id: str) -> None:
        """Send one delivery again and say how it went."""
        try:
            delivery = redeliver(get_app(), delivery_id)
        except RedeliveryError as exc:
            self.message_user(request, f"Delivery {delivery_id}: not sent ({exc}).", messages.ERROR)
            return
        level = messages.SUCCESS if delivery.ok else messages.ERROR
        self.message_user(request, f"Delivery {delivery_id}: {outcome(delivery)}.", level)

    @admin.action(description="Redeliver the selected deliveries", permissions=["redeliver"])
    def redeliver_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Send each selected delivery again (once per delivery id) and report the outcome."""
        for delivery_id in dict.fromkeys(queryset.values_list("delivery_id", flat=True)):
            self._redeliver(request, delivery_id)

    def get_urls(self) -> list[URLPattern]:
        """The admin's URLs, and ``<id>/redeliver/`` (POST) for one attempt's delivery."""
        name = f"{self.opts.app_label}_{self.opts.model_name}_redeliver"
        view = self.admin_site.admin_view(require_POST(self.redeliver_view))
        return [path("<path:object_id>/redeliver/", view, name=name), *super().get_urls()]

    def redeliver_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Send the delivery of one attempt again, then list that delivery's attempts."""
        if not self.has_redeliver_permission(request):
            raise PermissionDenied
        attempt = self.get_object(request, unquote(object_id))
        if attempt is None:
            raise Http404(f"No delivery attempt with id {object_id!r}.")
        self._redeliver(request, attempt.delivery_id)
        changelist = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
            current_app=self.admin_site.name,
        )
        return HttpResponseRedirect(f"{changelist}?{urlencode({'q': attempt.delivery_id})}")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The attempt's page, with a Redeliver button for users who may redeliver."""
        context = dict(extra_context or {})
        if self.has_redeliver_permission(request):
            context["redeliver_url"] = reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_redeliver",
                args=[object_id],
                current_app=self.admin_site.name,
            )
        return super().change_view(request, object_id, form_url, context)


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
        """The stored message, with secrets, credential headers and URL credentials masked."""
        message = dict(obj.message)
        if isinstance(message.get("headers"), dict):
            message["headers"] = masked_headers(message["headers"])
        message["subscribers"] = [
            {
                **subscriber,
                **({"hmac_secret": MASK} if subscriber.get("hmac_secret") else {}),
                **(
                    {"url": display_url(subscriber["url"])}
                    if isinstance(subscriber.get("url"), str)
                    else {}
                ),
            }
            for subscriber in message.get("subscribers") or ()
        ]
        return format_html("<pre>{}</pre>", json.dumps(message, indent=2, sort_keys=True))

    @admin.display(description="event")
    def event(self, obj: OutboxEvent) -> str:
        """The stored event's name."""
        return str(obj.message.get("event", "?"))
