"""Subscription API views: a user's own subscriptions, their deliveries, redelivery, re-enabling."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils.module_loading import import_string
from rest_framework import generics, status
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from thorn_core.redelivery import (
    API_REDELIVERY_LIMIT,
    RedeliveryError,
    redeliver,
    redeliver_failed,
    redelivery_summary,
)

from .._cli import parse_since
from ..conf import get_app, get_subscriber_model
from ..models import DeliveryAttempt
from ..source import subscriber_from_model
from .serializers import DeliveryAttemptSerializer, SubscriberSerializer, delivery_outcome

__all__ = [
    "DeliveryRedeliver",
    "SubscriberDeliveries",
    "SubscriberDetail",
    "SubscriberEnable",
    "SubscriberList",
    "SubscriberRedeliver",
    "permission_classes",
]


def permission_classes() -> list[type[BasePermission]]:
    """``THORN_DRF_PERMISSION_CLASSES`` imported (read per request), else ``IsAuthenticated``."""
    paths = get_app().settings.drf_permission_classes
    if paths is None:
        return [IsAuthenticated]
    return [import_string(path) for path in paths]


class _Owned:
    """Shared by both views: the permission setting and the requesting user's rows only."""

    serializer_class = SubscriberSerializer
    lookup_field = "uuid"

    def get_permissions(self) -> list[BasePermission]:
        return [permission() for permission in permission_classes()]

    def get_queryset(self) -> QuerySet[Any]:
        user = self.request.user  # type: ignore[attr-defined]
        return get_subscriber_model()._default_manager.owned_by(user)  # type: ignore[attr-defined, no-any-return]


class SubscriberList(_Owned, generics.ListCreateAPIView):  # type: ignore[type-arg]
    """``GET``: the user's subscriptions. ``POST``: a new one (the answer holds its secret)."""

    def perform_create(self, serializer: Any) -> None:
        user = self.request.user
        if not user.is_authenticated:
            raise NotAuthenticated("Subscriptions belong to a user: authenticate first.")
        serializer.save(user=user)


class SubscriberDetail(_Owned, generics.RetrieveUpdateDestroyAPIView):  # type: ignore[type-arg]
    """``GET``, ``PUT``/``PATCH``, ``DELETE`` one of the user's subscriptions (others': 404)."""


def _conflict(exc: RedeliveryError) -> Response:
    """409: the subscription is deactivated (or gone), or the delivery cannot be resent."""
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class SubscriberDeliveries(_Owned, generics.ListAPIView):  # type: ignore[type-arg]
    """``GET``: the logged attempts of one of the user's subscriptions, newest first.

    ``?failed=1`` keeps failed attempts only; ``?limit=N`` (default 50, at most 500).
    Read from the database delivery log (``DeliveryAttempt``).
    """

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


class SubscriberRedeliver(_Owned, generics.GenericAPIView):  # type: ignore[type-arg]
    """``POST``: send again every delivery of the subscription whose latest attempt failed.

    Body: optional ``since`` (ISO 8601; UTC without an offset). 409 while it is deactivated.
    """

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        row = self.get_object()
        since = request.data.get("since") if hasattr(request.data, "get") else None
        try:
            since_at = parse_since(str(since)) if since else None
        except ValueError as exc:
            raise ValidationError({"since": [str(exc)]}) from None
        try:
            deliveries = redeliver_failed(
                get_app(), str(row.uuid), since_at, limit=API_REDELIVERY_LIMIT
            )
        except RedeliveryError as exc:
            return _conflict(exc)
        return Response(redelivery_summary(deliveries))


class SubscriberEnable(_Owned, generics.GenericAPIView):  # type: ignore[type-arg]
    """``POST``: re-enable a deactivated subscription; its failure count starts again."""

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        row = self.get_object()
        get_app().reactivate_subscriber(subscriber_from_model(row))
        row.refresh_from_db()
        return Response(SubscriberSerializer(row).data)


class DeliveryRedeliver(_Owned, generics.GenericAPIView):  # type: ignore[type-arg]
    """``POST``: send one logged delivery again (same id, next attempt); 404 unless it was
    sent to one of the user's subscriptions, 409 when that one is deactivated."""

    def post(self, request: Request, delivery_id: str, *args: Any, **kwargs: Any) -> Response:
        app = get_app()
        record = app.delivery_log.latest(delivery_id)
        if record is None or not self.get_queryset().filter(uuid=record.subscriber_uuid).exists():
            raise Http404("No such delivery")
        try:
            delivery = redeliver(app, delivery_id)
        except RedeliveryError as exc:
            return _conflict(exc)
        return Response(delivery_outcome(delivery))
