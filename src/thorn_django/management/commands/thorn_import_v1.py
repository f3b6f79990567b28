"""``manage.py thorn_import_v1``: carry Thorn 1.x's stored subscribers over, losing none.

Each row of 1.x's table (``webhooks_subscriber`` by default) is planned by
:func:`thorn_core.v1.plan_v1_row`: imported as it was (same uuid, owner, secret, digest,
content type and timestamps), imported inactive (Thorn 2 refuses its URL, pattern or
content type), or skipped (unknown owner, malformed uuid, a secret or digest Thorn cannot
sign with). A row whose uuid is in the subscriber table already is left as it is, so a rerun
changes nothing. Every row not imported as it was is reported with its reason, and the exit
status is 1 when there is any.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from thorn_core.v1 import (
    COMPARED_FIELDS,
    V1_TABLE,
    V1Row,
    differences,
    missing_columns,
    plan_v1_row,
)
from thorn_core.validators import display_url

from ..._cli import ThornCommand
from ...conf import get_app, get_subscriber_model

#: The columns of the subscriber model read to compare with a planned row.
_STORED = ("uuid", *("user_id" if name == "user" else name for name in COMPARED_FIELDS))


class Command(ThornCommand):
    help = (
        "Import Thorn 1.x's subscribers (table webhooks_subscriber) into Thorn's subscriber "
        "model, keeping their uuids, owners, secrets and timestamps. Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be imported; write nothing."
        )
        parser.add_argument(
            "--table", default=V1_TABLE, help=f"The Thorn 1.x table (default {V1_TABLE})."
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="The database alias holding the 1.x table, written to as well (default: default).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias, table, dry_run = options["database"], options["table"], options["dry_run"]
        self.verbosity = int(options["verbosity"])
        if alias not in connections:
            raise CommandError(
                f"--database {alias!r} is not in DATABASES (there are: {', '.join(connections)})"
            )
        rows = list(_read_table(alias, table))
        model = get_subscriber_model()
        manager = model._default_manager.db_manager(alias)
        app, user_exists = get_app(), _user_check(model, alias, rows)
        plans = [
            plan_v1_row(app, row, user_exists=user_exists, position=n)
            for n, row in enumerate(rows, 1)
        ]
        existing = {
            values["uuid"]: {**values, "user": values.pop("user_id")}
            for values in manager.filter(
                uuid__in=[plan.fields["uuid"] for plan in plans if plan.fields]
            ).values(*_STORED)
        }
        counts = dict.fromkeys(("import", "inactive", "unchanged", "kept", "skip"), 0)
        new: list[V1Row] = []
        seen: set[Any] = set()
        problems = 0  # rows that will not receive events as they did in 1.x
        for plan in plans:
            outcome = plan.status
            if plan.fields and plan.fields["uuid"] in seen:
                outcome = "skip"
                plan = _skipped(plan, "its uuid appears on an earlier row of the table")
            elif plan.fields:
                seen.add(plan.fields["uuid"])
                stored = existing.get(plan.fields["uuid"])
                if stored is not None:
                    changed = differences(plan.fields, stored)
                    outcome = "kept" if changed else "unchanged"
                    self._report_existing(plan, changed)
                    counts[outcome] += 1
                    problems += outcome == "unchanged" and plan.status == "inactive"
                    continue
                new.append(plan)
            counts[outcome] += 1
            problems += outcome != "import"
            self._report(plan, dry_run=dry_run)
        if not dry_run and new:
            _create(model, alias, new)
        self._summary(table, alias, len(rows), counts, dry_run=dry_run)
        if problems:
            raise CommandError(
                f"{problems} of {len(rows)} Thorn 1.x subscriber(s) will not receive events as "
                "they did (the lines above say why): fix a skipped row in the 1.x table and run "
                "the command again; fix an inactive one in the admin and re-enable it there"
            )

    # -- output ----------------------------------------------------------------------------

    def _report(self, plan: V1Row, *, dry_run: bool) -> None:
        verb = {"import": "imported", "inactive": "inactive", "skip": "skipped"}[plan.status]
        if dry_run and plan.status != "skip":
            verb = f"would be {verb}"
        if plan.status == "import":
            if self.verbosity >= 2:
                self.stdout.write(f"{verb}: {plan.label} {_describe(plan)}")
        elif plan.status == "inactive":
            self.stdout.write(
                self.style.WARNING(f"{verb}: {plan.label} {_describe(plan)}: ")
                + "; ".join(plan.reasons)
            )
        else:
            self.stdout.write(self.style.ERROR(f"{verb}: {plan.label}: ") + "; ".join(plan.reasons))
        for note in plan.notes:
            self.stdout.write(f"note: {plan.label}: {note}")

    def _report_existing(self, plan: V1Row, changed: list[str]) -> None:
        if changed:
            self.stdout.write(
                f"kept: {plan.label} is imported already and its "
                f"{', '.join('active flag' if f == 'active' else f for f in changed)} changed "
                "since; left as it is"
            )
        elif plan.status == "inactive":
            self.stdout.write(
                self.style.WARNING(f"inactive: {plan.label} {_describe(plan)}: ")
                + "; ".join(plan.reasons)
            )
        elif self.verbosity >= 2:
            self.stdout.write(f"unchanged: {plan.label}")

    def _summary(
        self, table: str, alias: str, total: int, counts: Mapping[str, int], *, dry_run: bool
    ) -> None:
        would = "would be " if dry_run else ""
        self.stdout.write(
            f"Thorn 1.x table {table!r} (database {alias!r}): {total} row(s): "
            f"{counts['import']} {would}imported, {counts['inactive']} {would}imported inactive, "
            f"{counts['unchanged']} imported before, {counts['kept']} imported before and changed "
            f"since, {counts['skip']} skipped" + (" (dry run: nothing written)" if dry_run else "")
        )


def _describe(plan: V1Row) -> str:
    owner = plan.fields["user"]
    return (
        f"({plan.fields['event']} -> {display_url(plan.fields['url'])}"
        + (f", user {owner}" if owner is not None else "")
        + ")"
    )


def _skipped(plan: V1Row, reason: str) -> V1Row:
    return V1Row(label=plan.label, status="skip", reasons=(reason,), notes=plan.notes)


def _read_table(alias: str, table: str) -> Iterator[dict[str, Any]]:
    """The rows of the 1.x table as dicts by lower-case column name.

    Raises:
        CommandError: the table does not exist, or lacks a required column.
    """
    connection = connections[alias]
    with connection.cursor() as cursor:
        if table not in connection.introspection.table_names(cursor):
            raise CommandError(
                f"There is no table {table!r} in database {alias!r}: give Thorn 1.x's subscriber "
                "table with --table (and its database with --database)"
            )
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
        columns = [column[0].lower() for column in cursor.description]
        missing = missing_columns(columns)
        if missing:
            raise CommandError(
                f"Table {table!r} is not Thorn 1.x's subscriber table: it has no "
                f"{', '.join(missing)} column(s)"
            )
        for values in cursor.fetchall():
            yield dict(zip(columns, values, strict=True))


def _user_check(model: Any, alias: str, rows: list[dict[str, Any]]) -> Any:
    """``user_exists(user_id)`` for the rows: one query for every owner they name."""
    target = model._meta.get_field("user").target_field
    users = model._meta.get_field("user").related_model._default_manager.db_manager(alias)

    def key(value: Any) -> Any:
        try:
            return target.to_python(value)
        except ValidationError:
            return None

    wanted = {key(row["user_id"]) for row in rows if row.get("user_id") is not None} - {None}
    found = {str(pk) for pk in users.filter(pk__in=wanted).values_list("pk", flat=True)}
    return lambda user: key(user) is not None and str(key(user)) in found


def _create(model: Any, alias: str, plans: list[V1Row]) -> None:
    """Store the planned subscriptions, then give them their 1.x timestamps, in one
    transaction (``auto_now`` fields cannot be set on creation)."""
    manager = model._default_manager.db_manager(alias)
    with transaction.atomic(using=alias):
        manager.bulk_create(
            [
                model(
                    uuid=plan.fields["uuid"],
                    event=plan.fields["event"],
                    url=plan.fields["url"],
                    user_id=plan.fields["user"],
                    hmac_secret=plan.fields["hmac_secret"],
                    hmac_digest=plan.fields["hmac_digest"],
                    content_type=plan.fields["content_type"],
                    active=plan.fields["active"],
                )
                for plan in plans
            ],
            batch_size=500,
        )
        for plan in plans:
            stamps = {
                name: value
                for name, value in (
                    ("created_at", plan.created_at),
                    ("updated_at", plan.updated_at),
                )
                if value is not None
            }
            if stamps:
                manager.filter(uuid=plan.fields["uuid"]).update(**stamps)
