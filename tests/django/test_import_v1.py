"""``manage.py thorn_import_v1``: a project that starts with Thorn 1.x's table imports it, and
every good row delivers afterwards (real receiver on 127.0.0.1); bad rows are reported; a rerun
changes nothing. Runs on SQLite and, with THORN_TEST_DATABASE=postgresql, on PostgreSQL."""

from __future__ import annotations

import datetime
import io
import shlex
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from pytest_django.fixtures import Settings as SettingsWrapper

from thorn_core import Event
from thorn_core.receiver import WebhookReceiver
from thorn_core.validators import (
    allow_cidr_network,
    block_internal_ips,
    ensure_port,
    ensure_protocol,
)
from thorn_django.models import Subscriber

pytestmark = pytest.mark.django_db

WAIT = 30.0
#: The patterns of the good rows, each with owned and unowned rows.
PATTERNS = ("user.created", "user.*", "*.created", "*", "order.paid")
#: 1.x stored digests as its users typed them.
DIGESTS = ("SHA512", "SHA256", "SHA1", "sha256")
JSON, FORM = "application/json", "application/x-www-form-urlencoded"
GOOD_ROWS = 280


def _ddl(table: str, *, with_id: bool) -> str:
    """Thorn 1.x's ``webhooks_subscriber`` table as its Django migration made it, on this
    database (``id`` primary key, or the uuid as primary key)."""
    postgresql = connection.vendor == "postgresql"
    key = (
        ("id serial PRIMARY KEY," if postgresql else "id integer PRIMARY KEY AUTOINCREMENT,")
        if with_id
        else ""
    )
    uuid_type = "uuid" if postgresql else "char(32)"
    stamp = "timestamp with time zone" if postgresql else "datetime"
    unique = "UNIQUE" if with_id else "PRIMARY KEY"
    return (
        f"CREATE TABLE {table} ({key} uuid {uuid_type} NOT NULL {unique}, "
        "event varchar(150) NOT NULL, url varchar(200) NOT NULL, "
        "hmac_secret varchar(64) NOT NULL, hmac_digest varchar(64) NOT NULL, "
        f"content_type varchar(64) NOT NULL, created_at {stamp} NOT NULL, "
        f"updated_at {stamp} NOT NULL, user_id integer NULL)"
    )


@attrs.frozen
class V1Table:
    """The 1.x table of a test and the rows written to it, by kind."""

    name: str
    rows: list[dict[str, Any]]
    good: list[dict[str, Any]]
    inactive: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


def _secret(n: int) -> str:
    return f"thorn1-secret-{n:04d}-".ljust(64, "x")


def _stamp(n: int) -> datetime.datetime:
    return datetime.datetime(2016, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        hours=n, microseconds=n
    )


def _row(n: int, *, url: str, event: str, user: Any = None, **fields: Any) -> dict[str, Any]:
    row = {
        "uuid": uuid.uuid5(uuid.NAMESPACE_URL, f"thorn1/{n}"),
        "event": event,
        "url": url,
        "hmac_secret": _secret(n),
        "hmac_digest": DIGESTS[n % len(DIGESTS)],
        "content_type": FORM if n % 10 == 9 else JSON,
        "created_at": _stamp(n),
        "updated_at": _stamp(n) + datetime.timedelta(days=30),
        "user_id": user,
    }
    row.update(fields)
    return row


def write_v1_table(
    table: str,
    receiver: WebhookReceiver,
    users: list[Any],
    *,
    with_id: bool = True,
    bad_rows: bool = True,
) -> V1Table:
    """Create 1.x's table and fill it: 280 good rows (owned and unowned, every pattern, digests
    in capitals) and, unless ``bad_rows`` is False, 20 bad ones."""
    good = [
        _row(
            n,
            url=receiver.url(f"/hooks/{n}"),
            event=PATTERNS[n % len(PATTERNS)],
            user=None if n % 4 == 0 else users[n % len(users)].pk,
        )
        for n in range(GOOD_ROWS)
    ]
    n = GOOD_ROWS
    inactive = [
        _row(n + i, url=f"http://10.0.0.{i + 1}/hook", event="user.created") for i in range(4)
    ]
    inactive += [
        _row(n + 4 + i, url=receiver.url("/bad-pattern"), event="user.*.created") for i in range(3)
    ]
    inactive += [
        _row(n + 7 + i, url=receiver.url("/csv"), event="*", content_type="text/csv")
        for i in range(2)
    ]
    skipped = [
        _row(n + 9 + i, url=receiver.url("/gone-user"), event="*", user=999_999) for i in range(4)
    ]
    skipped += [
        _row(n + 13 + i, url=receiver.url("/md5"), event="*", hmac_digest="MD5") for i in range(4)
    ]
    skipped += [
        _row(n + 17 + i, url=receiver.url("/empty"), event="*", hmac_secret="") for i in range(3)
    ]
    if not bad_rows:
        inactive, skipped = [], []
    rows = good + inactive + skipped
    postgresql = connection.vendor == "postgresql"
    columns = list(rows[0])
    placeholders = ", ".join(["%s"] * len(columns))
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(_ddl(table, with_id=with_id))
        cursor.executemany(
            insert, [[_stored(row[column], postgresql) for column in columns] for row in rows]
        )
    return V1Table(table, rows, good, inactive, skipped)


def _stored(value: Any, postgresql: bool) -> Any:
    """A value as 1.x's Django wrote it: uuids as 32 hex digits on SQLite, naive UTC text."""
    if isinstance(value, uuid.UUID):
        return str(value) if postgresql else value.hex
    if isinstance(value, datetime.datetime) and not postgresql:
        return value.replace(tzinfo=None).isoformat(" ")
    return value


def run(*args: str) -> tuple[str, str | None]:
    """Run thorn_import_v1; its output, and the CommandError message if it exited non-zero."""
    out = io.StringIO()
    try:
        call_command("thorn_import_v1", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def snapshot() -> list[dict[str, Any]]:
    """Every stored subscription, every column."""
    return list(Subscriber.objects.order_by("uuid").values())


@pytest.fixture
def users(make_user: Callable[[str], Any]) -> list[Any]:
    """Three users owning 1.x subscriptions."""
    return [make_user(name) for name in ("ada", "grace", "edsger")]


@pytest.fixture
def open_loopback(settings: SettingsWrapper, receiver: WebhookReceiver) -> WebhookReceiver:
    """Loopback and the receiver's port opened explicitly; every other check kept."""
    settings.THORN_RECIPIENT_VALIDATORS = [
        ensure_protocol("http", "https"),
        ensure_port(80, 443, receiver.port),
        block_internal_ips(),
        allow_cidr_network("127.0.0.0/8"),
    ]
    return receiver


@pytest.fixture(params=[True, False], ids=["id-primary-key", "uuid-primary-key"])
def v1_table(
    request: pytest.FixtureRequest, open_loopback: WebhookReceiver, users: list[Any]
) -> V1Table:
    """Thorn 1.x's table, with an ``id`` primary key or with the uuid as primary key."""
    return write_v1_table("webhooks_subscriber", open_loopback, users, with_id=request.param)


def send_everything(users: list[Any]) -> list[Any]:
    """Send user.created and order.paid without a sender and from each user; the deliveries."""
    deliveries = []
    for sender in (None, *users):
        for name in ("user.created", "order.paid"):
            sender_id = None if sender is None else sender.pk
            result = Event(name).send({"sent_by": sender_id}, sender=sender)
            deliveries.extend(result.deliveries)
    return deliveries


class TestImport:
    """Importing a live 1.x table."""

    def test_every_good_row_delivers_afterwards(
        self, v1_table: V1Table, open_loopback: WebhookReceiver, users: list[Any]
    ) -> None:
        """Every good row delivers, with its uuid, secret and upper-case digest; bad rows
        never do; owned rows get only their owner's events."""
        output, error = run()

        assert f"{GOOD_ROWS} imported, 9 imported inactive" in output
        assert error is not None
        assert "20 of 300" in error
        deliveries = send_everything(users)
        assert deliveries
        assert all(d.ok for d in deliveries)
        received = open_loopback.wait_for(len(deliveries), WAIT)
        by_path = {f"/hooks/{n}": row for n, row in enumerate(v1_table.good)}
        assert {r.headers["hook-subscription"] for r in received} == {
            str(row["uuid"]) for row in v1_table.good
        }
        for request in received:
            row = by_path[request.path]  # no bad row received anything
            assert request.headers["hook-subscription"] == str(row["uuid"])
            assert request.hook_hmac_valid(row["hmac_secret"], row["hmac_digest"])
            if row["user_id"] is not None and row["content_type"] == JSON:
                assert request.json()["sent_by"] == row["user_id"]

    def test_fields_and_timestamps_are_kept(self, v1_table: V1Table) -> None:
        """uuid, owner, secret, digest (lower-cased), content type and timestamps are kept."""
        run()

        stored = {s.uuid: s for s in Subscriber.objects.all()}
        for row in v1_table.good:
            subscriber = stored[row["uuid"]]
            assert subscriber.event == row["event"]
            assert subscriber.url == row["url"]
            assert subscriber.user_id == row["user_id"]
            assert subscriber.hmac_secret == row["hmac_secret"]
            assert subscriber.hmac_digest == row["hmac_digest"].lower()
            assert subscriber.content_type == row["content_type"]
            assert subscriber.active is True
            assert subscriber.created_at == row["created_at"]
            assert subscriber.updated_at == row["updated_at"]
        for row in v1_table.inactive:
            assert stored[row["uuid"]].active is False
        assert not {row["uuid"] for row in v1_table.skipped} & set(stored)

    def test_rerunning_changes_nothing(self, v1_table: V1Table) -> None:
        """A second run writes nothing and reports the same problems."""
        first_output, first_error = run()
        before = snapshot()
        output, error = run()

        assert snapshot() == before
        assert "0 imported, 0 imported inactive, 289 imported before" in output
        assert error == first_error
        assert output.count("skipped:") == first_output.count("skipped:") == 11

    def test_dry_run_writes_nothing(self, v1_table: V1Table) -> None:
        """--dry-run reports what it would do and stores nothing."""
        output, error = run("--dry-run")

        assert snapshot() == []
        assert f"{GOOD_ROWS} would be imported, 9 would be imported inactive" in output
        assert "dry run: nothing written" in output
        assert error is not None


class TestReport:
    """What the report says about each row not imported as it was."""

    def test_each_bad_row_with_its_reason(self, v1_table: V1Table) -> None:
        """Inactive and skipped rows are named with the reason; none is silently dropped."""
        output, _error = run()

        lines = output.splitlines()
        for row in v1_table.inactive + v1_table.skipped:
            assert any(str(row["uuid"]) in line for line in lines), row
        assert output.count("names no user") == 4
        assert output.count("'MD5' is not supported") == 4
        assert output.count("refused") >= 4  # the private addresses
        assert output.count("'text/csv' is not supported") == 2
        assert "11 skipped" in output

    def test_a_subscription_changed_since_is_kept(self, v1_table: V1Table) -> None:
        """A row imported before and edited in Thorn 2 since is left as it is, and said so."""
        run()
        first = v1_table.good[1]
        Subscriber.objects.filter(uuid=first["uuid"]).update(event="user.deleted")
        output, _error = run()

        assert Subscriber.objects.get(uuid=first["uuid"]).event == "user.deleted"
        assert f"kept: {first['uuid']} is imported already and its event changed" in output

    def test_a_clean_table_exits_zero(
        self, open_loopback: WebhookReceiver, users: list[Any]
    ) -> None:
        """With every row importable the command succeeds; -v 2 lists each row."""
        table = write_v1_table("webhooks_subscriber", open_loopback, users, bad_rows=False)
        output, error = run("--verbosity", "2")

        assert error is None
        assert f"{GOOD_ROWS} imported, 0 imported inactive" in output
        assert output.count("imported: ") == len(table.good)

    def test_another_table_name(self, open_loopback: WebhookReceiver, users: list[Any]) -> None:
        """--table reads a 1.x table under another name."""
        write_v1_table("legacy_hooks", open_loopback, users)
        output, _error = run("--table", "legacy_hooks")

        assert "Thorn 1.x table 'legacy_hooks'" in output
        assert Subscriber.objects.count() == GOOD_ROWS + 9


class TestDoors:
    """Bad options and tables that are not 1.x's: one clear line, nothing written."""

    def test_unknown_database(self) -> None:
        """An alias not in DATABASES is named, with those there are."""
        _output, error = run("--database", "legacy")
        assert error is not None
        assert "--database 'legacy' is not in DATABASES" in error

    def test_missing_table(self) -> None:
        """No 1.x table: the error says to give it with --table."""
        _output, error = run("--table", "no_such_table")
        assert error is not None
        assert "no table 'no_such_table'" in error
        assert "--table" in error

    def test_not_a_v1_table(self) -> None:
        """A table without 1.x's columns is refused, naming the missing ones."""
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE other_hooks (uuid varchar(36), url varchar(200))")
        _output, error = run("--table", "other_hooks")

        assert error is not None
        assert "has no event, user_id, hmac_secret, hmac_digest, content_type column(s)" in error
        assert snapshot() == []


PAGE = Path(__file__).parents[2] / "docs" / "migrating.md"
#: The page's commands this test runs: the others create tables, open a shell or name a
#: uuid of the reader's.
RUN = ("check", "thorn_import_v1", "thorn_subscribers")


def page_commands() -> list[list[str]]:
    """The ``$ python manage.py ...`` lines of docs/migrating.md that this test runs."""
    commands = []
    for line in PAGE.read_text().splitlines():
        words = shlex.split(line.strip().removeprefix("$ ")) if "$ python manage.py" in line else []
        if words[2:3] and words[2] in RUN:
            commands.append(words[2:])
    return commands


class TestMigratingPage:
    """docs/migrating.md's steps, run as written against a 1.x table."""

    def test_the_page_names_the_commands(self) -> None:
        """The page runs check, a dry run, the import and its rerun, then lists."""
        assert [c[0] for c in page_commands()] == [
            "check",
            "thorn_import_v1",
            "thorn_import_v1",
            "thorn_import_v1",
            "thorn_subscribers",
        ]
        assert page_commands()[1] == ["thorn_import_v1", "--dry-run"]

    def test_the_steps_run_as_written(
        self, open_loopback: WebhookReceiver, users: list[Any]
    ) -> None:
        """Each command succeeds on a clean 1.x table; afterwards every row is stored."""
        table = write_v1_table("webhooks_subscriber", open_loopback, users, bad_rows=False)
        outputs = []
        for command in page_commands():
            out = io.StringIO()
            call_command(*command, stdout=out)
            outputs.append(out.getvalue())

        assert "would be imported" in outputs[1]
        assert f"{GOOD_ROWS} imported" in outputs[2]
        assert f"0 imported, 0 imported inactive, {GOOD_ROWS} imported before" in outputs[3]
        assert {s.uuid for s in Subscriber.objects.all()} == {row["uuid"] for row in table.good}
        assert all(str(row["uuid"]) in outputs[4] for row in table.good)
