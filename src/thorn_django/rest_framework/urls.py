"""URLs of the subscription API: ``path("hooks/", include("thorn_django.rest_framework.urls"))``.

``""`` and ``<uuid>/`` (subscriptions), ``<uuid>/deliveries/``, ``<uuid>/redeliver/``,
``<uuid>/enable/``, ``<uuid>/ping/``, ``<uuid>/rotate-secret/`` and
``deliveries/<delivery id>/redeliver/``; the event catalog at ``event-types/``,
``event-types/<name>/`` and ``asyncapi.json``.
"""

from __future__ import annotations

from django.urls import path

from .catalog import AsyncAPIDocument, EventTypeViewSet
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
    # Before "<str:uuid>/", which would take "event-types/" for a subscription id.
    path(
        "event-types/",
        EventTypeViewSet.as_view({"get": "list"}),
        name="event-type-list",
    ),
    path(
        "event-types/<str:name>/",
        EventTypeViewSet.as_view({"get": "retrieve"}),
        name="event-type-detail",
    ),
    path("asyncapi.json", AsyncAPIDocument.as_view(), name="asyncapi"),
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
