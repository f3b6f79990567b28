"""``manage.py thorn_ping UUID``: deliver a test event to one stored subscriber now."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from thorn_core.exceptions import ThornError
from thorn_core.ping import PING_EVENT, ping

from ...conf import get_app, get_subscriber_model
from ...source import subscriber_from_model


class Command(BaseCommand):
    help = "Send a test event (thorn.ping by default) to one subscriber, whatever its pattern."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("uuid", help="The subscriber's uuid.")
        parser.add_argument(
            "--event", default=PING_EVENT, help=f"Event name (default {PING_EVENT})."
        )
        parser.add_argument("--data", help="JSON payload (default: a ping payload).")

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_subscriber_model()
        try:
            row = model._default_manager.get(uuid=options["uuid"])
        except (model.DoesNotExist, ValidationError):  # type: ignore[attr-defined]
            raise CommandError(f"No subscriber {options['uuid']}") from None
        data = None
        if options["data"] is not None:
            try:
                data = json.loads(options["data"])
            except ValueError as exc:
                raise CommandError(f"--data is not JSON: {exc}") from None
        try:
            delivery = ping(
                get_app(), subscriber_from_model(row), event=options["event"], data=data
            )
        except ThornError as exc:
            raise CommandError(str(exc)) from None
        if not delivery.ok:
            reason = delivery.error or f"HTTP {delivery.status_code}"
            raise CommandError(f"Delivery {delivery.id} to {row.url} failed: {reason}")
        self.stdout.write(
            f"Delivered {options['event']} to {row.url} (HTTP {delivery.status_code}, "
            f"delivery {delivery.id})"
        )
