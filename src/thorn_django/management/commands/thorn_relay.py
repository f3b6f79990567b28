"""``manage.py thorn_relay [--loop]``: dispatch the events stored in the outbox."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import close_old_connections

from thorn_core.outbox import drain

from ..._cli import ThornCommand, limit, seconds
from ...conf import get_app


class Command(ThornCommand):
    help = (
        "Dispatch the events stored in the outbox (THORN_OUTBOX) and mark them done: "
        "until it is empty, or forever with --loop."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--loop", action="store_true", help="Keep relaying until interrupted (Ctrl-C)."
        )
        parser.add_argument(
            "--interval",
            type=seconds,
            default=1.0,
            help="With --loop: seconds between two looks at an empty outbox (default 1, at "
            "most a day).",
        )
        parser.add_argument(
            "--limit", type=limit, default=100, help="Events claimed per batch (default 100)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        app = get_app()
        if app.outbox is None:
            raise CommandError("This Thorn app has no outbox")
        batch: int = options["limit"]
        if not options["loop"]:
            self.stdout.write(f"Relayed {drain(app, limit=batch)} events")
            return
        try:
            while True:
                close_old_connections()
                count = drain(app, limit=batch)
                if count:
                    self.stdout.write(f"Relayed {count} events")
                time.sleep(options["interval"])
        except KeyboardInterrupt:
            self.stdout.write("Stopped")
