"""Every door of the ``manage.py thorn_*`` commands: each command, subcommand and option
refuses bad input with one line (``CommandError: ...`` or argparse's ``error: ...``), a
non-zero exit and no traceback, run as ``manage.py`` runs them.

The commands are found as Django finds them; the table below holds bad values for each and
for every option that takes a value, so a command or an option added without an entry fails
:class:`TestEveryDoorIsWalked`. A database without Thorn's tables is answered with
``migrate``, in a ``manage.py`` process of its own on an empty SQLite file.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import execute_from_command_line, get_commands, load_command_class
from django.core.management.base import BaseCommand

from thorn_django.models import Subscriber

from .._doors import Bad, case_ids, cases

#: A subscriber id that no subscriber has.
UNKNOWN = "00000000-0000-0000-0000-000000000000"
#: A URL the recipient validators accept (``example.com`` resolves to a public address here).
URL = "https://example.com/hooks"
ROOT = Path(__file__).resolve().parents[2]


#: Bad input for every command and subcommand, by ``manage.py`` words.
BAD: dict[str, list[Bad]] = {
    "thorn_ping": [
        Bad("uuid", ("nope",), 2, ("argument uuid", "'nope' is not a subscriber id")),
        Bad("uuid", (UNKNOWN,), 1, ("No subscriber", UNKNOWN)),
        Bad("event", (UNKNOWN, "--event", "a..b"), 2, ("--event", "empty segment")),
        Bad("event", (UNKNOWN, "--event", "a.*"), 2, ("--event", "wildcard")),
        Bad("data", (UNKNOWN, "--data", "{nope"), 2, ("--data", "not valid JSON")),
        Bad("data", (UNKNOWN, "--data", "[" * 100_000), 2, ("--data", "nests too deeply")),
    ],
    "thorn_catalog": [
        Bad("fmt", ("--format", "yaml"), 2, ("--format", "invalid choice", "'yaml'")),
        Bad("output", ("-o", "/nonexistent-thorn-dir/out.json"), 1, ("--output", "cannot write")),
    ],
    "thorn_endpoints": [
        Bad("targets", ("two words",), 2, ("argument URL_OR_ENDPOINT", "neither a URL")),
        Bad("targets", ("https://",), 2, ("argument URL_OR_ENDPOINT", "not a URL with a host")),
    ],
    "thorn_prune": [
        Bad("before", ("--before", "last week"), 2, ("--before", "not an ISO 8601")),
    ],
    "thorn_redeliver": [
        Bad("(group)", (), 2, ("one of the arguments --delivery --subscriber is required",)),
        Bad("delivery", ("--delivery", "nope"), 1, ("nope", "not in the delivery log")),
        Bad("subscriber", ("--subscriber", "nope"), 2, ("--subscriber", "not a subscriber id")),
        Bad("subscriber", ("--subscriber", UNKNOWN), 1, (UNKNOWN, "no longer exists")),
        Bad("since", ("--subscriber", UNKNOWN, "--since", "x"), 2, ("--since", "ISO 8601")),
        Bad("since", ("--delivery", "x", "--since", "2025-01-01"), 1, ("--since goes with",)),
    ],
    "thorn_relay": [
        Bad("interval", ("--interval", "0"), 2, ("--interval", "above 0")),
        Bad("interval", ("--interval", "nan"), 2, ("--interval", "above 0")),
        Bad("interval", ("--interval", "inf"), 2, ("--interval", "at most 86400")),
        Bad("limit", ("--limit", "0"), 2, ("--limit", "from 1 to 10000")),
        Bad("limit", ("--limit", "ten"), 2, ("--limit", "from 1 to 10000")),
        Bad("limit", ("--limit", "10001"), 2, ("--limit", "from 1 to 10000")),
    ],
    "thorn_subscribers": [
        Bad("action", (), 2, ("required: action",)),
        Bad("action", ("purge",), 2, ("invalid choice: 'purge'",)),
    ],
    "thorn_subscribers list": [
        Bad("event", ("--event", "a..b"), 2, ("--event", "empty segment")),
        Bad("user", ("--user", "nobody"), 1, ("--user", "no user", "'nobody'")),
    ],
    "thorn_subscribers add": [
        Bad("event", ("a.*.b", URL), 1, ("event:", "middle segment")),
        Bad("event", ("a" * 201, URL), 1, ("event:", "no more than 200 characters")),
        Bad("url", ("a.b", "http://10.0.0.1/"), 1, ("url:", "private address")),
        Bad("url", ("a.b", URL + "/" + "x" * 2048), 1, ("url:", "no more than 2048")),
        Bad("url", ("a.b",), 2, ("required: url",)),
        Bad("user", ("a.b", URL, "--user", "nobody"), 1, ("--user", "no user", "'nobody'")),
        Bad("user", ("a.b", URL, "--user", "999"), 1, ("--user", "no user", "'999'")),
        Bad("content_type", ("a.b", URL, "--content-type", "text/x"), 1, ("content_type:",)),
        Bad("digest", ("a.b", URL, "--digest", "md5"), 1, ("hmac_digest:", "md5")),
        Bad("filter", ("a.b", URL, "--filter", "{a"), 2, ("--filter", "not valid JSON")),
        Bad(
            "filter",
            ("a.b", URL, "--filter", '{"a": {"$x": 1}}'),
            1,
            ("filter:", "at /a/$x", "unknown operator"),
        ),
        Bad(
            "event_version",
            ("a.b", URL, "--event-version", "9"),
            1,
            ("version:", "matches no declared event type"),
        ),
    ],
    "thorn_subscribers remove": [
        Bad("uuid", ("nope",), 2, ("argument uuid", "not a subscriber id")),
        Bad("uuid", (UNKNOWN,), 1, ("No subscriber", UNKNOWN)),
    ],
    "thorn_subscribers rotate-secret": [
        Bad("uuid", ("nope",), 2, ("argument uuid", "not a subscriber id")),
        Bad("uuid", (UNKNOWN,), 1, ("No subscriber", UNKNOWN)),
        Bad("grace", (UNKNOWN, "--grace", "-1"), 2, ("--grace", "negative")),
        Bad("grace", (UNKNOWN, "--grace", "soon"), 2, ("--grace", "seconds")),
        Bad("grace", (UNKNOWN, "--grace", "9e9"), 2, ("--grace", "at most")),
    ],
    "thorn_subscribers reencrypt": [
        Bad("(arguments)", ("surplus",), 2, ("unrecognized arguments", "surplus")),
    ],
    "thorn_import_v1": [
        Bad("table", ("--table", "no_such_table"), 1, ("no table 'no_such_table'",)),
        Bad("database", ("--database", "other"), 1, ("--database 'other'", "not in DATABASES")),
    ],
}

#: For every command that does something: good arguments (on an empty database) and the
#: words of the answer (the tables to migrate, unless the command needs another table first).
MIGRATE = ("Thorn's tables do not exist yet", "thorn_django_subscriber", "manage.py migrate")
GOOD: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "thorn_ping": ((UNKNOWN,), MIGRATE),
    "thorn_endpoints": ((), MIGRATE),
    "thorn_prune": ((), MIGRATE),
    "thorn_redeliver": (("--delivery", "x"), MIGRATE),
    "thorn_relay": ((), MIGRATE),
    "thorn_subscribers list": ((), MIGRATE),
    "thorn_subscribers add": (("a.b", "http://127.0.0.1:8000/hooks"), MIGRATE),
    "thorn_subscribers remove": ((UNKNOWN,), MIGRATE),
    "thorn_subscribers rotate-secret": ((UNKNOWN,), MIGRATE),
    "thorn_subscribers reencrypt": ((), MIGRATE),
    "thorn_import_v1": ((), ("no table 'webhooks_subscriber'", "--table")),
}


def _base_options() -> set[str]:
    """The options every management command has (``--verbosity``, ``--settings``...)."""
    return {action.dest for action in BaseCommand().create_parser("manage.py", "x")._actions}


def doors() -> dict[str, set[str]]:
    """Every ``thorn_*`` command and subcommand, with its arguments that take a value."""
    base = _base_options()
    found: dict[str, set[str]] = {}

    def walk(words: str, parser: argparse.ArgumentParser) -> None:
        params = found.setdefault(words, set())
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                params.add(action.dest)
                for name, subparser in action.choices.items():
                    walk(f"{words} {name}", subparser)
            elif action.dest not in base and action.nargs != 0:
                params.add(action.dest)

    for name, app in get_commands().items():
        if name.startswith("thorn_"):
            walk(name, load_command_class(app, name).create_parser("manage.py", name))
    return found


def assert_refused(exit_code: object, out: str, err: str, expected: int, *words: str) -> None:
    """The command exited with ``expected`` and printed one error line holding ``words``."""
    assert exit_code == expected, out + err
    assert "Traceback" not in out + err
    errors = [
        line
        for line in err.splitlines()
        if line.startswith("CommandError: ") or ": error: " in line
    ]
    assert len(errors) == 1, err
    for word in words:
        assert word in errors[0], errors[0]


class TestEveryDoorIsWalked:
    """The tables cover the commands as Django finds them: every command, every option."""

    def test_every_command_has_bad_inputs(self) -> None:
        """Each ``thorn_*`` command and subcommand has an entry, and each entry a command."""
        assert set(doors()) == set(BAD)

    def test_every_command_has_a_good_input(self) -> None:
        """Each command that does something (not a group of subcommands) has good arguments."""
        found = doors()
        leaves = {words for words in found if not any(w.startswith(f"{words} ") for w in found)}
        assert leaves == set(GOOD) | set(NO_DATABASE)

    @pytest.mark.parametrize("words", sorted(BAD))
    def test_every_option_has_bad_values(self, words: str) -> None:
        """Every argument that takes a value has at least one bad value in the table."""
        assert doors()[words] <= {case.param for case in BAD[words]}


@pytest.mark.django_db(transaction=True)
class TestBadInput:
    """Bad input is one clear line and a non-zero exit, never a traceback; nothing is stored."""

    @pytest.mark.parametrize(
        ("words", "case"),
        cases(BAD),
        ids=case_ids(BAD),
    )
    def test_refused_in_one_line(
        self, capsys: pytest.CaptureFixture[str], words: str, case: Bad
    ) -> None:
        """``manage.py`` exits with the case's code and one error line naming the problem."""
        with pytest.raises(SystemExit) as exited:
            execute_from_command_line(["manage.py", *words.split(), *case.args])

        out, err = capsys.readouterr()
        assert_refused(exited.value.code, out, err, case.exit_code, *case.words)
        assert not Subscriber.objects.exists()


def manage(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py ARGS`` in a process of its own on the SQLite file ``database``."""
    return subprocess.run(  # noqa: S603 - our own test script
        [sys.executable, "-m", "tests.django._empty_database", str(database), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


#: Commands that read no table, with good arguments: they work on a database without tables.
NO_DATABASE: dict[str, tuple[str, ...]] = {"thorn_catalog": ("--format", "json")}


class TestNoDatabase:
    """Commands that need no table run on a database without Thorn's tables."""

    @pytest.mark.parametrize("words", sorted(NO_DATABASE))
    def test_runs_without_tables(self, tmp_path: Path, words: str) -> None:
        """The command exits 0 and prints its answer, no traceback."""
        process = manage(tmp_path / "empty.sqlite3", *words.split(), *NO_DATABASE[words])

        assert process.returncode == 0, process.stderr
        assert process.stdout


class TestMissingTables:
    """On a database without Thorn's tables, every command says to run ``migrate``; other
    database errors are one line too."""

    @pytest.mark.parametrize("words", sorted(GOOD))
    def test_no_tables(self, tmp_path: Path, words: str) -> None:
        """One ``CommandError`` line naming the tables and ``migrate``, exit 1, no traceback."""
        args, expected = GOOD[words]

        process = manage(tmp_path / "empty.sqlite3", *words.split(), *args)

        assert_refused(process.returncode, process.stdout, process.stderr, 1, *expected)

    def test_other_database_error(self, tmp_path: Path) -> None:
        """A column the database lacks (a migration not applied) is one ``database error``."""
        path = tmp_path / "drifted.sqlite3"
        migrated = manage(path, "migrate", "--verbosity", "0")
        assert migrated.returncode == 0, migrated.stderr
        with sqlite3.connect(path) as connection:
            connection.execute("ALTER TABLE thorn_django_subscriber DROP COLUMN content_type")
        connection.close()

        process = manage(path, "thorn_subscribers", "list")

        assert_refused(
            process.returncode,
            process.stdout,
            process.stderr,
            1,
            "database error: no such column: thorn_django_subscriber.content_type",
        )
