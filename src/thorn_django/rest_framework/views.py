"""Subscription API views: a user's own subscriptions, their deliveries, test pings,
redelivery and re-enabling."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.utils.module_loading import import_string
from rest_framework import generics, status
from rest_framework.exceptions import (
    APIException,
    NotAuthenticated,
    NotFound,
    ValidationError,
)
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils import formatting

from thorn_core.exceptions import InvalidRotation
from thorn_core.ping import ping
from thorn_core.redelivery import (
    API_REDELIVERY_LIMIT,
    RedeliveryError,
    redeliver,
    redeliver_failed,
    redelivery_summary,
)
from thorn_core.rotation import grace_from
from thorn_core.subscriptions import (
    SubscriptionInvalid,
    body_limit,
    body_too_large,
    check_object,
    read_since,
)

from ..conf import get_app, get_subscriber_model
from ..models import DeliveryAttempt
from ..source import StoredSubscribers, subscriber_from_model
from .serializers import DeliveryAttemptSerializer, SubscriberSerializer, delivery_outcome

__all__ = [
    "BodyTooLarge",
    "DeliveryRedeliver",
    "SubscriberDeliveries",
    "SubscriberDetail",
    "SubscriberEnable",
    "SubscriberList",
    "SubscriberPing",
    "SubscriberRedeliver",
    "SubscriberRotateSecret",
    "permission_classes",
]


def permission_classes() -> list[type[BasePermission]]:
    """``THORN_DRF_PERMISSION_CLASSES`` imported (read per request), else ``IsAuthenticated``."""
    paths = get_app().settings.drf_permission_classes
    if paths is None:
        return [IsAuthenticated]
    return [import_string(path) for path in paths]


class BodyTooLarge(APIException):
    """413: the request body is over the API's limit (see :func:`request_body_limit`)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


def request_body_limit() -> int:
    """The largest body the API reads: the core's cap, or ``DATA_UPLOAD_MAX_MEMORY_SIZE``
    when it is smaller (Django REST Framework's JSON parser does not apply that setting)."""
    return body_limit(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def _content_length(request: Request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class _Owned:
    """Shared by the views: the permission setting, the requesting user's rows only, the
    body limit, and descriptions shown as plain paragraphs in the browsable API."""

    serializer_class = SubscriberSerializer
    lookup_field = "uuid"

    def get_permissions(self) -> list[BasePermission]:
        return [permission() for permission in permission_classes()]

    def get_queryset(self) -> QuerySet[Any]:
        user = self.request.user  # type: ignore[attr-defined]
        return get_subscriber_model()._default_manager.owned_by(user)  # type: ignore[attr-defined, no-any-return]

    def get_object(self) -> Any:
        """The user's subscription named in the URL; else 404 ``Not found.`` (a malformed
        uuid too), as the Flask API answers."""
        try:
            return super().get_object()  # type: ignore[misc]
        except Http404:
            raise NotFound() from None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Refuse a body over the limit (413) before anything reads it (the CSRF check of
        session authentication reads forms), then authenticate and check permissions."""
        limit = request_body_limit()
        if _content_length(request) > limit:
            raise BodyTooLarge(body_too_large(limit))
        super().initial(request, *args, **kwargs)  # type: ignore[misc]

    def get_view_description(self, html: bool = False) -> str:
        """The docstring, its wrapped lines joined into paragraphs."""
        text = formatting.dedent(type(self).__doc__ or "")
        paragraphs = (" ".join(part.split()) for part in text.split("\n\n"))
        text = "\n\n".join(part for part in paragraphs if part)
        return formatting.markup_description(text) if html else text


class SubscriberList(_Owned, generics.ListCreateAPIView):  # type: ignore[type-arg]
    """Your webhook subscriptions.

    GET lists them. POST creates one from a JSON object: event and url are required;
    content_type, hmac_digest, hmac_secret and active are optional. The answer (201) holds
    hmac_secret, the only time it is shown, and names the new subscription in its
    Location header. A password in a URL is always shown masked.
    """

    name = "Subscriptions"

    def perform_create(self, serializer: Any) -> None:
        user = self.request.user
        if not user.is_authenticated:
            raise NotAuthenticated("Subscriptions belong to a user: authenticate first.")
        serializer.save(user=user)

    def get_success_headers(self, data: Any) -> dict[str, str]:
        """``Location``: the API URL of the new subscription (not the webhook's URL)."""
        return {"Location": str(data["subscription"])}


class SubscriberDetail(_Owned, generics.RetrieveUpdateDestroyAPIView):  # type: ignore[type-arg]
    """One of your webhook subscriptions.

    GET shows it, PUT replaces it (event and url required), PATCH changes the fields sent,
    DELETE removes it. Switching active back on re-enables it and its failure count
    starts again. Sending back the masked URL keeps the stored one.
    """

    name = "Subscription"


def _conflict(exc: RedeliveryError) -> Response:
    """409: the subscription is deactivated (or gone), or the delivery cannot be resent."""
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class SubscriberDeliveries(_Owned, generics.ListAPIView):  # type: ignore[type-arg]
    """The logged delivery attempts of one of your subscriptions, newest first.

    ?failed=1 keeps failed attempts only; ?limit=N shows N (default 50, at most 500).
    """

    name = "Deliveries"
    serializer_class = DeliveryAttemptSerializer  # type: ignore[assignment]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        row = self.get_object()
        attempts = DeliveryAttempt.objects.filter(subscriber_uuid=row.uuid).order_by("-at", "-pk")
        if request.query_params.get("failed") in ("1", "true"):
            attempts = attempts.filter(ok=False)
        try:
            limit = min(max(int(request.query_params.get("limit", 50)), 1), 500)
        except ValueError:
            raise ValidationError({"limit": ["A number."]}) from None
        return Response(DeliveryAttemptSerializer(attempts[:limit], many=True).data)


class SubscriberPing(_Owned, generics.GenericAPIView):  # type: ignore[type-arg]
    """POST sends a signed test event (thorn.ping) to this subscription now, and answers
    the outcome."""

    name = "Ping"

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        row = self.get_object()
        return Response(delivery_outcome(ping(get_app(), subscriber_from_model(row))))


class SubscriberRedeliver(_Owned, generics.GenericAPIView):  # type: ignore[type-arg]
    """POST sends again every delivery of this subscription whose latest attempt failed,
    the 20 oldest per call.

    Optional JSON body: {"since": ISO 8601 time, UTC when it has no offset}. Answers 409
    while the subscription is deactivated.
    """

    name = "Redeliver"

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        row = self.get_object()
        data = request.data
        problems = check_object(data)
        if problems:
            raise ValidationError(problems)
        try:
            since = read_since(data.get("since") if isinstance(data, Mapping) else None)
        except SubscriptionInvalid as exc:
            raise ValidationError(exc.errors) from None
        try:
            deliveries = redeliver_failed(
                get_app(), str(row.uuid), since, limit=API_REDELIVERY_LIMIT
            )
        except RedeliveryError as exc:
            return _conflict(exc)
        return Response(redelivery_summary(deliveries))


class SubscriberEnable(_Owned, generics.GenericAPIView):  # type: ignore[type-arg]
    """POST re-enables a deactivated subscription; its failure count starts again."""

    name = "Enable"

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        row = self.get_object()
        get_app().reactivate_subscriber(subscriber_from_model(row))
        row.refresh_from_db()
        return Response(self.get_serializer(row).data)


class SubscriberRotateSecret(_Owned, generics.GenericAPIView):  # type: ignore[type-arg]
    """POST gives this subscription a new secret, shown in this answer only; the old one
    keeps signing (a second webhook-signature entry) until the grace ends.

    Optional JSON body: {"grace": seconds, 86400 by default, 0 to 2592000}.
    """

    name = "Rotate secret"

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        row = self.get_object()
        data = request.data
        problems = check_object(data)
        if problems:
            raise ValidationError(problems)
        try:
            grace = grace_from(data.get("grace") if isinstance(data, Mapping) else None)
            rotated = StoredSubscribers().rotate(row, grace)
        except InvalidRotation as exc:
            raise ValidationError({"grace": [str(exc)]}) from None
        row.refresh_from_db()
        serializer = self.get_serializer(row)
        serializer._show_secret = True
        body = dict(serializer.data)
        expiries = [s.expires_at for s in rotated.previous_secrets if s.expires_at]
        body["previous_secret_expires_at"] = max(expiries).isoformat() if expiries else None
        return Response(body)


class DeliveryRedeliver(_Owned, generics.GenericAPIView):  # type: ignore[type-arg]
    """POST sends one logged delivery again (same id, next attempt).

    404 unless it was sent to one of your subscriptions, 409 when that one is deactivated.
    """

    name = "Redeliver a delivery"

    def post(self, request: Request, delivery_id: str, *args: Any, **kwargs: Any) -> Response:
        app = get_app()
        record = app.delivery_log.latest(delivery_id)
        if record is None or not self.get_queryset().filter(uuid=record.subscriber_uuid).exists():
            raise NotFound()
        try:
            delivery = redeliver(app, delivery_id)
        except RedeliveryError as exc:
            return _conflict(exc)
        return Response(delivery_outcome(delivery))
