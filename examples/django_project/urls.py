"""URLs of the example shop: admin, the subscription API, order pages."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from shop import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/hooks/", include("thorn_django.rest_framework.urls")),
    path("orders/<uuid:uuid>/", views.order_detail, name="order-detail"),
]
