"""``manage.py thorn_catalog``: the project's event catalog as JSON, AsyncAPI 3.0 or Markdown."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from thorn_core.asyncapi import FORMATS, render_catalog

from ..._cli import ThornCommand
from ...conf import get_app


class Command(ThornCommand):
    help = (
        "Write the event catalog: the published contract of the project's webhooks (the same "
        "output as `thorn catalog`)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--format",
            dest="fmt",
            choices=FORMATS,
            default="json",
            help="json: the types with their schemas; asyncapi: an AsyncAPI 3.0 document; "
            "markdown: a page for people (default: json).",
        )
        parser.add_argument("-o", "--output", help="Write to this file instead of stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        text = render_catalog(get_app().catalog, options["fmt"])
        if options["output"]:
            try:
                with open(options["output"], "w", encoding="utf-8") as target:
                    target.write(text)
            except OSError as exc:
                raise CommandError(
                    f"--output: cannot write {options['output']}: {exc.strerror}"
                ) from None
        else:
            self.stdout.write(text, ending="")
