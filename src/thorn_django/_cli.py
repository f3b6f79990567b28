"""What the management commands share: the base command, argument types, outcomes.

:class:`ThornCommand` turns every expected error into one ``CommandError`` line: the core's
refusals and database errors (a missing table named with ``migrate``). The argument types
check values at parse time with the core's messages, so a bad value is a usage error
(``manage.py thorn_x: error: argument --limit: ...``, exit 2) before anything is done.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections, router

from thorn_core.cli import (
    parse_event_name,
    parse_json,
    parse_limit,
    parse_seconds,
    parse_subscriber_id,
    parse_time,
)
from thorn_core.exceptions import ThornError

if TYPE_CHECKING:
    from django.db.models import Model

    from thorn_core.delivery import Delivery

__all__ = [
    "ThornCommand",
    "event_name",
    "iso_time",
    "json_value",
    "limit",
    "outcome",
    "seconds",
    "subscriber_id",
]

_T = TypeVar("_T")


def _argument_type(name: str, parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argparse ``type``: ``parse(value)``, whose ValueError or ThornError message becomes
    the usage error (argparse would otherwise say only ``invalid <name> value``)."""

    def convert(value: str) -> _T:
        try:
            return parse(value)
        except (ValueError, ThornError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


#: A subscriber's uuid.
subscriber_id = _argument_type("subscriber_id", parse_subscriber_id)
#: An ISO 8601 date or time, aware (UTC when it has no offset).
iso_time = _argument_type("iso_time", parse_time)
#: An event name (no wildcard).
event_name = _argument_type("event_name", parse_event_name)
#: A JSON document.
json_value = _argument_type("json_value", parse_json)
#: The events a relay claims per batch: 1 to ``thorn_core.cli.MAX_LIMIT``.
limit = _argument_type("limit", parse_limit)
#: A duration in seconds (``--interval``): above 0, at most a day.
seconds = _argument_type("seconds", parse_seconds)


def _thorn_models() -> list[type[Model]]:
    """The models whose tables the commands use: thorn_django's and the subscriber model."""
    from .conf import get_subscriber_model

    models = list(apps.get_app_config("thorn_django").get_models())
    subscriber = get_subscriber_model()
    if subscriber not in models:
        models.append(subscriber)
    return models


def _missing_tables() -> list[str]:
    """Thorn's tables that do not exist in their databases."""
    missing = []
    existing: dict[str, list[str]] = {}
    for model in _thorn_models():
        alias = router.db_for_read(model) or "default"
        if alias not in existing:
            existing[alias] = connections[alias].introspection.table_names()
        if model._meta.db_table not in existing[alias]:
            missing.append(model._meta.db_table)
    return missing


def _database_problem(exc: DatabaseError) -> str:
    """One line about a database error: the tables to create with ``migrate``, or the
    driver's first line."""
    try:
        missing = _missing_tables()
    except DatabaseError:
        missing = []
    if missing:
        tables = ", ".join(missing)
        return f"Thorn's tables do not exist yet ({tables}): run `python manage.py migrate` first"
    first = str(exc).strip().splitlines()
    return f"database error: {first[0] if first else type(exc).__name__}"


class ThornCommand(BaseCommand):
    """A management command whose expected errors are one line: the core's refusals
    (:class:`~thorn_core.exceptions.ThornError`) and database errors become ``CommandError``."""

    def execute(self, *args: Any, **options: Any) -> Any:
        """Run the command; a ThornError or a DatabaseError is raised as a CommandError."""
        try:
            return super().execute(*args, **options)
        except ThornError as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(_database_problem(exc)) from None


def outcome(delivery: Delivery) -> str:
    """``delivered (HTTP 200)`` or ``failed (reason)``."""
    if delivery.ok:
        return f"delivered (HTTP {delivery.status_code})"
    return f"failed ({delivery.error or f'HTTP {delivery.status_code}'})"
