"""``manage.py thorn_prune``: remove old delivery attempts and relayed outbox events."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from thorn_core.log import retention_cutoff

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
        attempts = app.delivery_log.prune(before)
        self.stdout.write(
            f"Removed {attempts} delivery attempts older than {before:%Y-%m-%d %H:%M:%S %Z}"
        )
        prune_outbox = getattr(app.outbox, "prune", None)
        if prune_outbox is not None:
            events = prune_outbox(before)
            self.stdout.write(f"Removed {events} relayed outbox events")
