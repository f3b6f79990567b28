"""``manage.py thorn_redeliver --delivery ID | --subscriber UUID [--since ISO]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from thorn_core.redelivery import RedeliveryError, redeliver, redeliver_failed

from ..._cli import outcome, parse_since
from ...conf import get_app


class Command(BaseCommand):
    help = (
        "Send logged deliveries again, under their ids: one delivery, or every delivery of "
        "a subscriber whose latest attempt failed (since a time)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--delivery", help="A delivery id (the Hook-Delivery header).")
        which.add_argument("--subscriber", help="A subscriber's uuid: its failed deliveries.")
        parser.add_argument(
            "--since",
            help="With --subscriber: only deliveries attempted at or after this ISO 8601 "
            "time (UTC without an offset).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        app = get_app()
        if options["delivery"] is not None:
            if options["since"] is not None:
                raise CommandError("--since goes with --subscriber")
            try:
                delivery = redeliver(app, options["delivery"])
            except RedeliveryError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"Delivery {delivery.id}: {outcome(delivery)}")
            if not delivery.ok:
                raise CommandError(f"Delivery {delivery.id} failed again")
            return
        since = None
        if options["since"] is not None:
            try:
                since = parse_since(options["since"])
            except ValueError as exc:
                raise CommandError(f"--since: {exc}") from None

        def progress(done: int, total: int, delivery: Any) -> None:
            self.stdout.write(
                f"[{done}/{total}] {delivery.id} {delivery.event}: {outcome(delivery)}"
            )

        try:
            deliveries = redeliver_failed(app, options["subscriber"], since, progress=progress)
        except RedeliveryError as exc:
            raise CommandError(str(exc)) from None
        failed = sum(not delivery.ok for delivery in deliveries)
        self.stdout.write(
            f"Redelivered {len(deliveries)}: {len(deliveries) - failed} delivered, {failed} failed"
        )
