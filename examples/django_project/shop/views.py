"""Order pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from .models import Order


def order_detail(request: HttpRequest, uuid: str) -> HttpResponse:
    """A minimal order page (the ``ref`` of the webhooks points here)."""
    order = get_object_or_404(Order, uuid=uuid)
    return HttpResponse(f"Order {order.uuid}: {order.total} ({order.state})")
