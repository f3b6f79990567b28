"""URLs of the subscription API: ``path("hooks/", include("thorn_django.rest_framework.urls"))``."""

from __future__ import annotations

from django.urls import path

from .views import SubscriberDetail, SubscriberList

app_name = "thorn"

urlpatterns = [
    path("", SubscriberList.as_view(), name="subscriber-list"),
    path("<uuid:uuid>/", SubscriberDetail.as_view(), name="subscriber-detail"),
]
