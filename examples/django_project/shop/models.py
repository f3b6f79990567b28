"""An order that sends ``order.created`` and ``order.paid`` webhooks."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse

from thorn_core import ModelEvent, webhook_model


@webhook_model(sender_field="customer")
class Order(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    total = models.DecimalField(max_digits=10, decimal_places=2)
    state = models.CharField(max_length=20, default="NEW")

    class webhooks:
        on_create = ModelEvent("order.created")
        on_paid = ModelEvent("order.paid", state__now_eq="PAID").dispatches_on_change()

        def payload(self, order: Order) -> dict[str, Any]:
            return {"uuid": order.uuid, "total": order.total, "state": order.state}

    def get_absolute_url(self) -> str:
        return reverse("order-detail", kwargs={"uuid": self.uuid})
