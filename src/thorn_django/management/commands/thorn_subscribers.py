"""``manage.py thorn_subscribers list|add|remove|rotate-secret|reencrypt``: manage stored
subscribers."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.ed25519 import public_key
from thorn_core.exceptions import InvalidRotation, SecretDecryptionError
from thorn_core.patterns import candidate_patterns
from thorn_core.rotation import grace_from
from thorn_core.subscriptions import SubscriptionInvalid, ensure_subscription
from thorn_core.validators import display_url

from ..._cli import ThornCommand, _argument_type, event_name, json_value, subscriber_id
from ...conf import get_app, get_subscriber_model
from ...source import StoredSubscribers

#: ``--grace``: seconds, 0 to 30 days.
grace_seconds = _argument_type("grace_seconds", grace_from)


def _one_line(exc: ValidationError) -> str:
    """A model's validation errors on one line: ``field: message; field: message``."""
    return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())


class Command(ThornCommand):
    help = "List, add or remove stored webhook subscribers."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="List subscribers (the secret is not shown).")
        listing.add_argument(
            "--event",
            type=event_name,
            help="Only subscribers whose pattern matches this event (any owner).",
        )
        listing.add_argument("--user", help="Only this user's subscribers (username or id).")
        add = actions.add_parser("add", help="Add a subscriber; prints its uuid and secret.")
        add.add_argument("event", help="Event name or pattern: article.created, article.*, *")
        add.add_argument("url", help="Where the events are POSTed.")
        add.add_argument(
            "--user", help="The owner (username or id); events only with them as sender."
        )
        add.add_argument("--content-type", default=JSON_CONTENT_TYPE)
        add.add_argument("--digest", default="sha256", help="HMAC digest (default sha256).")
        add.add_argument(
            "--filter",
            type=json_value,
            help='A payload filter as JSON: {"amount": {"$gte": 100}}.',
        )
        add.add_argument("--event-version", help="Pin a version of the event type: only its sends.")
        remove = actions.add_parser("remove", help="Delete a subscriber by uuid.")
        remove.add_argument("uuid", type=subscriber_id)
        rotate = actions.add_parser(
            "rotate-secret",
            help="Give a subscriber a new secret (printed once); the old one signs until the "
            "grace ends.",
        )
        rotate.add_argument("uuid", type=subscriber_id)
        rotate.add_argument(
            "--grace",
            type=grace_seconds,
            default=None,
            help="Seconds the old secret keeps signing (default 86400, at most 2592000).",
        )
        actions.add_parser(
            "reencrypt",
            help="Rewrite every stored secret with the newest key of THORN_SECRET_KEYS.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"].replace("-", "_")
        getattr(self, f"_{action}")(options)

    def _user(self, name: str | None) -> Any:
        """The user ``name`` names: by username, else by id (primary key)."""
        if name is None:
            return None
        model = get_user_model()
        try:
            return model._default_manager.get_by_natural_key(name)  # type: ignore[attr-defined]
        except model.DoesNotExist:
            pass
        try:
            found = model._default_manager.filter(pk=name).first()
        except (ValueError, TypeError, ValidationError):
            found = None  # not an id of this user model
        if found is None:
            raise CommandError(f"--user: no user with the username or id {name!r}")
        return found

    def _list(self, options: dict[str, Any]) -> None:
        manager = get_subscriber_model()._default_manager
        user = self._user(options["user"])
        rows = manager.select_related("user")
        if options["event"]:
            rows = rows.filter(event__in=candidate_patterns(options["event"]))
        if user is not None:
            rows = rows.filter(user=user)
        count = 0
        for row in rows:
            count += 1
            state = "active" if row.active else "inactive"
            owner = row.user.get_username() if row.user_id is not None else "-"
            self.stdout.write(
                f"{row.uuid}  {row.event}  {display_url(row.url)}  user={owner}  {state}"
            )
        if not count:
            self.stdout.write("No subscribers.")

    def _add(self, options: dict[str, Any]) -> None:
        values = {
            "event": options["event"],
            "url": options["url"],
            "content_type": options["content_type"],
            "hmac_digest": options["digest"],
            "filter": options["filter"],
            "version": options["event_version"],
        }
        try:
            ensure_subscription(get_app(), values)
        except SubscriptionInvalid as exc:
            raise CommandError(str(exc)) from None
        row = get_subscriber_model()(user=self._user(options["user"]), **values)
        try:
            row.full_clean()
        except ValidationError as exc:
            raise CommandError(f"Invalid subscription: {_one_line(exc)}") from None
        row.save()
        self.stdout.write(
            f"Added subscriber {row.uuid}: {row.event} -> {display_url(row.url)}"  # type: ignore[attr-defined]
        )
        self.stdout.write(f"Secret (shown once): {row.hmac_secret}")  # type: ignore[attr-defined]
        self._public_key(row.hmac_secret)  # type: ignore[attr-defined]

    def _public_key(self, secret: str) -> None:
        """Print the ``whpk_`` key of an ed25519 secret, for the subscriber's receiver."""
        found = public_key(secret)
        if found is not None:
            self.stdout.write(f"Public key (for its receiver): {found}")

    def _remove(self, options: dict[str, Any]) -> None:
        deleted, _ = get_subscriber_model()._default_manager.filter(uuid=options["uuid"]).delete()
        if not deleted:
            raise CommandError(f"No subscriber {options['uuid']}")
        self.stdout.write(f"Removed subscriber {options['uuid']}")

    def _rotate_secret(self, options: dict[str, Any]) -> None:
        row = get_subscriber_model()._default_manager.filter(uuid=options["uuid"]).first()
        if row is None:
            raise CommandError(f"No subscriber {options['uuid']}")
        try:
            rotated = StoredSubscribers().rotate(row, grace_from(options["grace"]))
        except (InvalidRotation, SecretDecryptionError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Rotated the secret of subscriber {rotated.uuid}")
        for old in rotated.previous_secrets:
            when = old.expires_at.isoformat() if old.expires_at else "never"
            self.stdout.write(f"An older secret keeps signing until {when}")
        self.stdout.write(f"Secret (shown once): {rotated.hmac_secret}")
        self._public_key(rotated.hmac_secret)

    def _reencrypt(self, options: dict[str, Any]) -> None:
        done, unreadable = StoredSubscribers().reencrypt()
        how = "with the newest key" if getattr(settings, "THORN_SECRET_KEYS", None) else "in clear"
        self.stdout.write(f"Rewrote the secrets of {done} subscriber(s) {how}.")
        if unreadable:
            raise CommandError(
                f"{len(unreadable)} subscriber(s) have a secret no key of THORN_SECRET_KEYS "
                f"decrypts, left as stored: {', '.join(unreadable)}"
            )
