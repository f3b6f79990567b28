"""Every door of ``flask thorn``: each command and option refuses bad input with one
``Error:`` line, a non-zero exit and no traceback, on a real SQLite database.

The table below holds bad values for every command and every option that takes a value; a
command or an option added without an entry fails :class:`TestEveryDoorIsWalked`. A
database without Thorn's tables is answered with the call that creates them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import flask
import pytest
import sqlalchemy
from click.testing import Result
from sqlalchemy.orm import sessionmaker

from thorn_flask import Thorn, get_state
from thorn_flask.cli import thorn_cli

from .._doors import Bad, case_ids, cases, valued_params
from ..core.test_cli import assert_user_error
from .app import LOOPBACK, Subscription, db

#: A subscriber id that no subscriber has.
UNKNOWN = "00000000-0000-0000-0000-000000000000"


#: Bad input for every command of ``flask thorn``, by command name.
BAD: dict[str, list[Bad]] = {
    "list": [
        Bad("event", ("--event", "user..created"), 2, ("--event", "empty segment")),
        Bad("event", ("--event", "user.*"), 2, ("--event", "wildcard")),
        Bad("user", ("--user", "u" * 65), 2, ("--user", "at most 64 characters")),
        Bad("user", ("--user", " "), 2, ("--user", "cannot be empty")),
    ],
    "add": [
        Bad("url", ("http://10.0.0.1/", "--event", "a.b"), 1, ("url:", "private address")),
        Bad("url", ("not a url", "--event", "a.b"), 1, ("url:", "invalid URL")),
        Bad("url", ("http://127.0.0.1/" + "x" * 2048, "--event", "a.b"), 1, ("url:", "2048")),
        Bad("event", ("http://127.0.0.1/",), 2, ("--event",)),
        Bad("event", ("http://127.0.0.1/", "--event", "a.*.b"), 1, ("event:", "middle segment")),
        Bad("event", ("http://127.0.0.1/", "--event", "a" * 201), 1, ("event:", "200")),
        Bad(
            "user",
            ("http://127.0.0.1/", "--event", "a.b", "--user", "u" * 65),
            2,
            ("--user", "at most 64"),
        ),
        Bad(
            "content_type",
            ("http://127.0.0.1/", "--event", "a.b", "--content-type", "text/plain"),
            1,
            ("content_type:", "text/plain"),
        ),
        Bad(
            "hmac_digest",
            ("http://127.0.0.1/", "--event", "a.b", "--digest", "md5"),
            1,
            ("hmac_digest:", "md5"),
        ),
        Bad(
            "payload_filter",
            ("http://127.0.0.1/", "--event", "a.b", "--filter", "{a"),
            2,
            ("--filter", "not valid JSON"),
        ),
        Bad(
            "payload_filter",
            ("http://127.0.0.1/", "--event", "a.b", "--filter", '{"a": {"$x": 1}}'),
            1,
            ("filter:", "at /a/$x", "unknown operator"),
        ),
        Bad(
            "event_version",
            ("http://127.0.0.1/", "--event", "a.b", "--event-version", "9"),
            1,
            ("version:", "matches no declared event type"),
        ),
    ],
    "remove": [
        Bad("subscriber_id", ("nope",), 2, ("SUBSCRIBER_ID", "not a subscriber id")),
        Bad("subscriber_id", (UNKNOWN,), 1, ("No subscriber", UNKNOWN)),
    ],
    "ping": [
        Bad("subscriber_id", ("nope",), 2, ("SUBSCRIBER_ID", "not a subscriber id")),
        Bad("subscriber_id", (UNKNOWN,), 1, ("No subscriber", UNKNOWN)),
        Bad("event", (UNKNOWN, "--event", "a..b"), 2, ("--event", "empty segment")),
    ],
    "redeliver": [
        Bad("(none)", (), 2, ("give either",)),
        Bad("delivery_id", ("--delivery", "nope"), 1, ("nope", "not in the delivery log")),
        Bad("subscriber_id", ("--subscriber", "nope"), 2, ("--subscriber", "not a subscriber")),
        Bad("subscriber_id", ("--subscriber", UNKNOWN), 1, (UNKNOWN, "no longer exists")),
        Bad(
            "since",
            ("--subscriber", UNKNOWN, "--since", "yesterday"),
            2,
            ("--since", "not an ISO 8601"),
        ),
        Bad("since", ("--delivery", "x", "--since", "2025-01-01"), 2, ("--since goes with",)),
    ],
    "enable": [
        Bad("subscriber_id", ("nope",), 2, ("SUBSCRIBER_ID", "not a subscriber id")),
        Bad("subscriber_id", (UNKNOWN,), 1, ("No subscriber", UNKNOWN)),
    ],
    "catalog": [
        Bad("fmt", ("--format", "yaml"), 2, ("--format", "'yaml'")),
        Bad("output", ("-o", "/nonexistent-thorn-dir/out.json"), 1, ("Could not open", "No such")),
    ],
    "endpoints": [
        Bad("targets", ("two words",), 2, ("URL_OR_ENDPOINT", "neither a URL")),
        Bad("targets", ("https://",), 2, ("URL_OR_ENDPOINT", "not a URL with a host")),
    ],
    "prune": [
        Bad("before", ("--before", "last week"), 2, ("--before", "not an ISO 8601")),
    ],
    "rotate-secret": [
        Bad("subscriber_id", ("nope",), 2, ("SUBSCRIBER_ID", "not a subscriber id")),
        Bad("subscriber_id", (UNKNOWN,), 1, ("No subscriber", UNKNOWN)),
        Bad("grace", (UNKNOWN, "--grace", "-1"), 2, ("--grace", "negative")),
        Bad("grace", (UNKNOWN, "--grace", "soon"), 2, ("--grace", "seconds")),
        Bad("grace", (UNKNOWN, "--grace", "9e9"), 2, ("--grace", "at most")),
    ],
    "reencrypt": [
        Bad("(arguments)", ("surplus",), 2, ("unexpected extra argument",)),
    ],
    "relay": [
        Bad("interval", ("--interval", "0"), 2, ("--interval", "above 0")),
        Bad("interval", ("--interval", "-1"), 2, ("--interval", "above 0")),
        Bad("interval", ("--interval", "nan"), 2, ("--interval", "above 0")),
        Bad("interval", ("--interval", "inf"), 2, ("--interval", "at most 86400")),
        Bad("limit", ("--limit", "0"), 2, ("--limit", "from 1 to 10000")),
        Bad("limit", ("--limit", "ten"), 2, ("--limit", "from 1 to 10000")),
        Bad("limit", ("--limit", "10001"), 2, ("--limit", "from 1 to 10000")),
    ],
}

#: Good arguments for every command: each reaches the database.
GOOD: dict[str, tuple[str, ...]] = {
    "list": (),
    "add": ("http://127.0.0.1:8000/hook", "--event", "a.b"),
    "remove": (UNKNOWN,),
    "ping": (UNKNOWN,),
    "redeliver": ("--delivery", "x"),
    "enable": (UNKNOWN,),
    "endpoints": (),
    "prune": (),
    "relay": (),
    "rotate-secret": (UNKNOWN,),
    "reencrypt": (),
}


def invoke(app: flask.Flask, *args: str) -> Result:
    """Run ``flask thorn ARGS`` for ``app``."""
    return app.test_cli_runner().invoke(args=["thorn", *args])


@pytest.fixture
def tableless(tmp_path: Path) -> Iterator[Callable[[], flask.Flask]]:
    """Make apps with Thorn (outbox on) on a new SQLite database that has no tables yet."""
    apps: list[flask.Flask] = []

    def make() -> flask.Flask:
        app = flask.Flask(f"tableless{len(apps)}")
        app.config.update(
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / f'empty{len(apps)}.db'}",
            THORN_RECIPIENT_VALIDATORS=LOOPBACK,
            THORN_OUTBOX=True,
        )
        db.init_app(app)
        Thorn(app, db=db, model=Subscription, current_user=lambda: None)
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        get_state(app).core.close()


class TestEveryDoorIsWalked:
    """The tables cover ``flask thorn`` as it is: every command, every option."""

    def test_every_command_has_bad_and_good_inputs(self) -> None:
        """Each command has bad inputs and a good one, and each entry a command."""
        assert set(thorn_cli.commands) == set(BAD) == set(GOOD) | set(NO_DATABASE)

    @pytest.mark.parametrize("name", sorted(BAD))
    def test_every_option_has_bad_values(self, name: str) -> None:
        """Every parameter that takes a value has at least one bad value in the table."""
        walked = {case.param for case in BAD[name]}
        assert valued_params(thorn_cli.commands[name]) <= walked


class TestBadInput:
    """Bad input is one clear line and a non-zero exit, never a traceback; nothing is stored."""

    @pytest.mark.parametrize(
        ("command", "case"),
        cases(BAD),
        ids=case_ids(BAD),
    )
    def test_refused_in_one_line(
        self, make_app: Callable[..., flask.Flask], command: str, case: Bad
    ) -> None:
        """The command exits with the case's code and one ``Error:`` line naming the problem."""
        app = make_app()

        result = invoke(app, command, *case.args)

        assert_user_error(result, case.exit_code, *case.words)
        with app.app_context():
            assert db.session.query(Subscription).count() == 0


#: Commands that read no table, with good arguments: they work on a database without tables.
NO_DATABASE: dict[str, tuple[str, ...]] = {"catalog": ("--format", "json")}


class TestNoDatabase:
    """Commands that need no table run on a database without Thorn's tables."""

    @pytest.mark.parametrize("command", sorted(NO_DATABASE))
    def test_runs_without_tables(self, tableless: Callable[[], flask.Flask], command: str) -> None:
        """The command exits 0 and prints its answer."""
        result = invoke(tableless(), command, *NO_DATABASE[command])

        assert result.exit_code == 0, result.output
        assert result.output


class TestMissingTables:
    """A database without Thorn's tables is named, with the call that creates them; other
    database errors are one line too."""

    @pytest.mark.parametrize("command", sorted(GOOD))
    def test_no_tables(self, tableless: Callable[[], flask.Flask], command: str) -> None:
        """Every command names the missing tables and ``db.create_all()``, no traceback."""
        result = invoke(tableless(), command, *GOOD[command])

        assert_user_error(
            result,
            1,
            "the tables thorn_subscriber, thorn_delivery_attempt, thorn_outbox do not exist yet: "
            "create them with db.create_all(), or a migration",
        )

    def test_other_database_error(self, tableless: Callable[[], flask.Flask]) -> None:
        """A column the table lacks (a migration not applied) is one ``database error`` line."""
        app = tableless()
        with app.app_context():
            db.create_all()
            with db.engine.begin() as connection:
                connection.exec_driver_sql("ALTER TABLE thorn_subscriber DROP COLUMN content_type")

        result = invoke(app, "list")

        assert_user_error(
            result, 1, "database error: no such column: thorn_subscriber.content_type"
        )

    def test_plain_sqlalchemy(self, tmp_path: Path) -> None:
        """With the ready models on plain SQLAlchemy, the message names Thorn's own base."""
        engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
        app = flask.Flask("plain")
        Thorn(app, session_factory=sessionmaker(engine), current_user=lambda: None)
        try:
            result = invoke(app, "list")
        finally:
            get_state(app).core.close()
            engine.dispose()

        assert_user_error(
            result,
            1,
            "the tables thorn_subscriber, thorn_delivery_attempt do not exist yet: create them "
            "with thorn_flask.Base.metadata.create_all(engine), or a migration",
        )
