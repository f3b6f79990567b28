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

#: The types that return what they are given unchanged once converted, so that
#: :class:`ThornCommand` can apply them to every value (JSON cannot: a JSON string parses to a
#: Python string that is not JSON, so ``call_command``'s ``data`` is taken as it is).
_TYPES = (subscriber_id, iso_time, event_name, limit, seconds)


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


def _chosen_actions(
    parser: argparse.ArgumentParser, options: dict[str, Any]
) -> list[argparse.Action]:
    """The arguments of ``parser`` and of the subcommand ``options`` chose."""
    actions = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(options.get(action.dest))
            if chosen is not None:
                actions += _chosen_actions(chosen, options)
        else:
            actions.append(action)
    return actions


class ThornCommand(BaseCommand):
    """A management command whose expected errors are one line: the core's refusals
    (:class:`~thorn_core.exceptions.ThornError`) and database errors become ``CommandError``.

    Options that ``call_command`` passes as keyword arguments (which argparse never sees) go
    through their argument types here, as the command line's do: ``before="2025-01-01"``
    becomes a datetime, ``limit=0`` is refused.
    """

    def execute(self, *args: Any, **options: Any) -> Any:
        """Run the command; a ThornError or a DatabaseError is raised as a CommandError."""
        try:
            return super().execute(*args, **{**options, **self._typed(options)})
        except ThornError as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(_database_problem(exc)) from None

    def _typed(self, options: dict[str, Any]) -> dict[str, Any]:
        """The options whose argument type is one of this module's, converted by it (again,
        for those argparse converted: the types return what they are given, converted)."""
        name = type(self).__module__.rpartition(".")[2]
        typed = {}
        for action in _chosen_actions(self.create_parser("manage.py", name), options):
            value = options.get(action.dest)
            if value is None or action.type not in _TYPES:
                continue
            try:
                typed[action.dest] = action.type(value)
            except argparse.ArgumentTypeError as exc:
                shown = "/".join(action.option_strings) or action.dest
                raise CommandError(f"Error: argument {shown}: {exc}") from None
        return typed


def outcome(delivery: Delivery) -> str:
    """``delivered (HTTP 200)`` or ``failed (reason)``."""
    if delivery.ok:
        return f"delivered (HTTP {delivery.status_code})"
    return f"failed ({delivery.error or f'HTTP {delivery.status_code}'})"
