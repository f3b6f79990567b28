"""URLs of the subscription API: ``path("hooks/", include("thorn_django.rest_framework.urls"))``.

``""`` and ``<uuid>/`` (subscriptions), ``<uuid>/deliveries/``, ``<uuid>/redeliver/``,
``<uuid>/enable/`` and ``deliveries/<delivery id>/redeliver/``.
"""

from __future__ import annotations

from django.urls import path

from .views import (
    DeliveryRedeliver,
    SubscriberDeliveries,
    SubscriberDetail,
    SubscriberEnable,
    SubscriberList,
    SubscriberRedeliver,
)

app_name = "thorn"

urlpatterns = [
    path("", SubscriberList.as_view(), name="subscriber-list"),
    path("<uuid:uuid>/", SubscriberDetail.as_view(), name="subscriber-detail"),
    path("<uuid:uuid>/deliveries/", SubscriberDeliveries.as_view(), name="subscriber-deliveries"),
    path("<uuid:uuid>/redeliver/", SubscriberRedeliver.as_view(), name="subscriber-redeliver"),
    path("<uuid:uuid>/enable/", SubscriberEnable.as_view(), name="subscriber-enable"),
    path(
        "deliveries/<str:delivery_id>/redeliver/",
        DeliveryRedeliver.as_view(),
        name="delivery-redeliver",
    ),
]
