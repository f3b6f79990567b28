"""``manage.py thorn_endpoints``: the health of the endpoints of stored and static subscribers."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from thorn_core.cli import endpoints_output, parse_endpoint

from ..._cli import ThornCommand, _argument_type
from ...conf import get_app, get_subscriber_model

#: An endpoint: a URL (its origin), or an endpoint name.
endpoint = _argument_type("endpoint", parse_endpoint)


class Command(ThornCommand):
    help = (
        "Show the health of webhook endpoints: circuit state, failure rate, requests in the "
        "window and the next probe (the same report as `thorn endpoints`)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "targets",
            nargs="*",
            type=endpoint,
            metavar="URL_OR_ENDPOINT",
            help="Only these endpoints (a URL stands for its scheme, host and port).",
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print a JSON array."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Only the two columns the endpoint key needs, streamed: a site may hold many rows.
        rows = get_subscriber_model()._default_manager.only("url", "endpoint").iterator()
        self.stdout.write(
            endpoints_output(get_app(), rows, options["targets"], as_json=options["as_json"])
        )
