"""``manage.py thorn_ping UUID``: deliver a test event to one stored subscriber now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from thorn_core.ping import PING_EVENT, ping
from thorn_core.validators import display_url

from ..._cli import ThornCommand, event_name, json_value, subscriber_id
from ...conf import get_app, get_subscriber_model
from ...source import subscriber_from_model


class Command(ThornCommand):
    help = "Send a test event (thorn.ping by default) to one subscriber, whatever its pattern."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("uuid", type=subscriber_id, help="The subscriber's uuid.")
        parser.add_argument(
            "--event",
            type=event_name,
            default=PING_EVENT,
            help=f"Event name (default {PING_EVENT}).",
        )
        parser.add_argument(
            "--data", type=json_value, help="JSON payload (default: a ping payload)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_subscriber_model()
        row = model._default_manager.filter(uuid=options["uuid"]).first()
        if row is None:
            raise CommandError(f"No subscriber {options['uuid']}")
        delivery = ping(
            get_app(), subscriber_from_model(row), event=options["event"], data=options["data"]
        )
        shown = display_url(row.url)  # type: ignore[attr-defined]
        if not delivery.ok:
            reason = delivery.error or f"HTTP {delivery.status_code}"
            raise CommandError(f"Delivery {delivery.id} to {shown} failed: {reason}")
        self.stdout.write(
            f"Delivered {options['event']} to {shown} (HTTP {delivery.status_code}, "
            f"delivery {delivery.id})"
        )
