"""``manage.py thorn_subscribers list|add|remove``: manage stored subscribers."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.exceptions import InvalidEventName
from thorn_core.patterns import candidate_patterns

from ...conf import get_subscriber_model


class Command(BaseCommand):
    help = "List, add or remove stored webhook subscribers."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="List subscribers (the secret is not shown).")
        listing.add_argument(
            "--event", help="Only subscribers whose pattern matches this event (any owner)."
        )
        listing.add_argument("--user", help="Only this user's subscribers (username).")
        add = actions.add_parser("add", help="Add a subscriber; prints its uuid and secret.")
        add.add_argument("event", help="Event name or pattern: article.created, article.*, *")
        add.add_argument("url", help="Where the events are POSTed.")
        add.add_argument("--user", help="The owner (username); events only with them as sender.")
        add.add_argument("--content-type", default=JSON_CONTENT_TYPE)
        add.add_argument("--digest", default="sha256", help="HMAC digest (default sha256).")
        remove = actions.add_parser("remove", help="Delete a subscriber by uuid.")
        remove.add_argument("uuid")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        getattr(self, f"_{action}")(options)

    def _user(self, username: str | None) -> Any:
        if username is None:
            return None
        user_model = get_user_model()
        try:
            return user_model._default_manager.get_by_natural_key(username)  # type: ignore[attr-defined]
        except user_model.DoesNotExist:
            raise CommandError(f"No user {username!r}") from None

    def _list(self, options: dict[str, Any]) -> None:
        manager = get_subscriber_model()._default_manager
        user = self._user(options["user"])
        rows = manager.select_related("user")
        if options["event"]:
            try:
                rows = rows.filter(event__in=candidate_patterns(options["event"]))
            except InvalidEventName as exc:
                raise CommandError(str(exc)) from None
        if user is not None:
            rows = rows.filter(user=user)
        count = 0
        for row in rows:
            count += 1
            state = "active" if row.active else "inactive"
            owner = row.user.get_username() if row.user_id is not None else "-"
            self.stdout.write(f"{row.uuid}  {row.event}  {row.url}  user={owner}  {state}")
        if not count:
            self.stdout.write("No subscribers.")

    def _add(self, options: dict[str, Any]) -> None:
        model = get_subscriber_model()
        row = model(
            event=options["event"],
            url=options["url"],
            user=self._user(options["user"]),
            content_type=options["content_type"],
            hmac_digest=options["digest"],
        )
        try:
            row.full_clean()
        except ValidationError as exc:
            lines = [f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
            raise CommandError("Invalid subscriber:\n" + "\n".join(lines)) from None
        row.save()
        self.stdout.write(f"Added subscriber {row.uuid}")  # type: ignore[attr-defined]
        self.stdout.write(f"Secret (shown once): {row.hmac_secret}")  # type: ignore[attr-defined]

    def _remove(self, options: dict[str, Any]) -> None:
        try:
            deleted, _ = (
                get_subscriber_model()._default_manager.filter(uuid=options["uuid"]).delete()
            )
        except ValidationError:
            raise CommandError(f"{options['uuid']!r} is not a UUID") from None
        if not deleted:
            raise CommandError(f"No subscriber {options['uuid']}")
        self.stdout.write(f"Removed subscriber {options['uuid']}")
