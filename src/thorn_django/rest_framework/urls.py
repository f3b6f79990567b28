"""URLs of the subscription API: ``path("hooks/", include("thorn_django.rest_framework.urls"))``.

``""`` and ``<uuid>/`` (subscriptions), ``<uuid>/deliveries/``, ``<uuid>/redeliver/``,
``<uuid>/enable/``, ``<uuid>/ping/``, ``<uuid>/rotate-secret/`` and
``deliveries/<delivery id>/redeliver/``.
"""

from __future__ import annotations

from django.urls import path

from .views import (
    DeliveryRedeliver,
    SubscriberDeliveries,
    SubscriberDetail,
    SubscriberEnable,
    SubscriberList,
    SubscriberPing,
    SubscriberRedeliver,
    SubscriberRotateSecret,
)

app_name = "thorn"

urlpatterns = [
    path("", SubscriberList.as_view(), name="subscriber-list"),
    path("<str:uuid>/", SubscriberDetail.as_view(), name="subscriber-detail"),
    path("<str:uuid>/deliveries/", SubscriberDeliveries.as_view(), name="subscriber-deliveries"),
    path("<str:uuid>/redeliver/", SubscriberRedeliver.as_view(), name="subscriber-redeliver"),
    path("<str:uuid>/enable/", SubscriberEnable.as_view(), name="subscriber-enable"),
    path("<str:uuid>/ping/", SubscriberPing.as_view(), name="subscriber-ping"),
    path(
        "<str:uuid>/rotate-secret/",
        SubscriberRotateSecret.as_view(),
        name="subscriber-rotate-secret",
    ),
    path(
        "deliveries/<str:delivery_id>/redeliver/",
        DeliveryRedeliver.as_view(),
        name="delivery-redeliver",
    ),
]
