"""``manage.py deliver_demo``: deliver a verified webhook to a receiver on 127.0.0.1."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test import override_settings

from thorn_core.receiver import WebhookReceiver
from thorn_core.validators import allow_cidr_network, block_internal_ips, ensure_protocol
from thorn_core.verification import verify_request
from thorn_django import get_app
from thorn_django.models import Subscriber

from ...models import Order

#: Loopback is refused by default; the demo opens 127.0.0.0/8 explicitly.
LOOPBACK = [
    ensure_protocol("http", "https"),
    block_internal_ips(),
    allow_cidr_network("127.0.0.0/8"),
]


class Command(BaseCommand):
    help = "Start a local receiver, subscribe it, create and pay an order, print the webhooks."

    def handle(self, *args: Any, **options: Any) -> None:
        # A real project sets THORN_RECIPIENT_VALIDATORS in settings only if it must.
        with override_settings(THORN_RECIPIENT_VALIDATORS=LOOPBACK), WebhookReceiver() as receiver:
            subscriber = Subscriber(event="order.*", url=receiver.url("/hooks"))
            subscriber.full_clean()
            subscriber.save()
            try:
                with transaction.atomic():
                    order = Order.objects.create(total=Decimal("42.00"))
                    self.stdout.write("Order created; nothing sent until the commit.")
                    assert not receiver.received
                if get_app().settings.outbox:
                    self.stdout.write("Committed with the order in the outbox; relaying it.")
                    call_command("thorn_relay", stdout=self.stdout)
                order.state = "PAID"
                order.save()
            finally:
                subscriber.delete()
            if len(receiver.received) != 2:
                raise CommandError(f"expected 2 webhooks, got {len(receiver.received)}")
            for webhook in receiver.received:
                verified = verify_request(webhook.headers, webhook.body, subscriber.hmac_secret)
                self.stdout.write(f"Verified {verified.event} (delivery {verified.delivery_id}):")
                self.stdout.write(json.dumps(verified.payload, indent=2))
