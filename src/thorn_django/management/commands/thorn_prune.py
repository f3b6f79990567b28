"""``manage.py thorn_prune``: remove old delivery attempts and relayed outbox events."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from thorn_core.log import retention_cutoff
from thorn_core.outbox import PrunableOutbox, prune

from ..._cli import ThornCommand, iso_time
from ...conf import get_app


class Command(ThornCommand):
    help = (
        "Remove delivery attempts older than THORN_DELIVERY_LOG_RETENTION (or --before), "
        "keeping the latest attempt of every delivery that has not succeeded, and outbox "
        "events relayed before then."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--before",
            type=iso_time,
            help="Remove what is older than this ISO 8601 time instead (UTC without offset).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        app = get_app()
        before = options["before"] or retention_cutoff(app.settings.delivery_log_retention)
        pruned = prune(app, before)
        self.stdout.write(
            f"Removed {pruned.attempts} delivery attempts older than {before:%Y-%m-%d %H:%M:%S %Z}"
        )
        if isinstance(app.outbox, PrunableOutbox):
            self.stdout.write(f"Removed {pruned.outbox_events} relayed outbox events")
