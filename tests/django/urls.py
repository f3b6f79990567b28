"""URLs of the test project: the admin, the subscription API, articles, a webhook receiver."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from .testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("hooks/", include("thorn_django.rest_framework.urls")),
    path("articles/<uuid:uuid>/", views.article_detail, name="article-detail"),
    path("authors/<int:pk>/", views.article_detail, name="author-detail"),
    path("receive/", views.receive, name="receive"),
    path("receive-rotating/", views.receive_rotating, name="receive-rotating"),
    path("receive-unknown/", views.receive_unknown, name="receive-unknown"),
    path("receive-ed25519/", views.receive_ed25519, name="receive-ed25519"),
]
