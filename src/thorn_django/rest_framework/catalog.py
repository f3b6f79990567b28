"""The event catalog over the API: ``event-types/`` (browsable, read-only) and ``asyncapi.json``."""

from __future__ import annotations

from typing import Any

from rest_framework import viewsets
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from thorn_core.asyncapi import to_asyncapi

from ..conf import get_app
from .views import permission_classes

__all__ = ["AsyncAPIDocument", "EventTypeViewSet"]


class EventTypeViewSet(viewsets.ViewSet):
    """The declared event types: name, version, description, schema and examples.

    ``event-types/<name>/`` gives the newest version of a type, ``?version=`` another one.
    """

    lookup_field = "name"
    lookup_value_regex = r"[^/]+"

    def get_permissions(self) -> list[BasePermission]:
        return [permission() for permission in permission_classes()]

    def list(self, request: Request) -> Response:
        """Every declared type, by name then version."""
        return Response([t.to_dict() for t in get_app().catalog.types()])

    def retrieve(self, request: Request, name: str | None = None) -> Response:
        """One type: the newest version, or ``?version=``."""
        catalog = get_app().catalog
        version = request.query_params.get("version")
        found = catalog.get(name or "", version)
        if found is None:
            known = ", ".join(catalog.names()) or "none"
            what = f"{name!r} version {version}" if version else repr(name)
            raise NotFound(f"no event type {what}; declared: {known}")
        return Response({**found.to_dict(), "versions": catalog.versions(found.name)})


class AsyncAPIDocument(APIView):
    """The catalog as an AsyncAPI 3.0 document (JSON)."""

    renderer_classes = (JSONRenderer,)

    def get_permissions(self) -> list[BasePermission]:
        return [permission() for permission in permission_classes()]

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The document, titled after the site's host."""
        return Response(to_asyncapi(get_app().catalog, title=f"{request.get_host()} webhooks"))
