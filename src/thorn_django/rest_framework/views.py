"""Subscription API views: a user lists, creates, reads, changes and deletes their own."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.module_loading import import_string
from rest_framework import generics
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission, IsAuthenticated

from ..conf import get_app, get_subscriber_model
from .serializers import SubscriberSerializer

__all__ = ["SubscriberDetail", "SubscriberList", "permission_classes"]


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
