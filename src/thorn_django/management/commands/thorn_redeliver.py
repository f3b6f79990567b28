"""``manage.py thorn_redeliver --delivery ID | --subscriber UUID [--since ISO]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from thorn_core.redelivery import redeliver, redeliver_failed

from ..._cli import ThornCommand, iso_time, outcome, subscriber_id
from ...conf import get_app


class Command(ThornCommand):
    help = (
        "Send logged deliveries again, under their ids: one delivery, or every delivery of "
        "a subscriber whose latest attempt failed (since a time)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--delivery", help="A delivery id (the Hook-Delivery header).")
        which.add_argument(
            "--subscriber", type=subscriber_id, help="A subscriber's uuid: its failed deliveries."
        )
        parser.add_argument(
            "--since",
            type=iso_time,
            help="With --subscriber: only deliveries attempted at or after this ISO 8601 "
            "time (UTC without an offset).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        app = get_app()
        if options["delivery"] is not None:
            if options["since"] is not None:
                raise CommandError("--since goes with --subscriber")
            delivery = redeliver(app, options["delivery"])
            self.stdout.write(f"Delivery {delivery.id}: {outcome(delivery)}")
            if not delivery.ok:
                raise CommandError(f"Delivery {delivery.id} failed again")
            return

        def progress(done: int, total: int, delivery: Any) -> None:
            self.stdout.write(
                f"[{done}/{total}] {delivery.id} {delivery.event}: {outcome(delivery)}"
            )

        deliveries = redeliver_failed(
            app, str(options["subscriber"]), options["since"], progress=progress
        )
        failed = sum(not delivery.ok for delivery in deliveries)
        self.stdout.write(
            f"Redelivered {len(deliveries)}: {len(deliveries) - failed} delivered, {failed} failed"
        )
