"""docs/flask.md's getting started runs as written: the blog, its tables, its webhooks, and
its Flask-Migrate migrations, on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import sqlalchemy

from thorn_core.receiver import ReceivedWebhook
from thorn_core.verification import verify_request
from thorn_flask import DeliveryAttempt, OutboxEvent, Subscriber
from thorn_flask.models import declare_tables

from .._page_projects import (
    PageProject,
    code_blocks,
    flows,
    listening_receiver,
    postgres_database,
)

PAGE = Path(__file__).parents[2] / "docs" / "flask.md"
#: Every table the blog needs: its own and Thorn's.
TABLES = {"article", "thorn_subscriber", "thorn_delivery_attempt", "thorn_outbox"}


@attrs.frozen
class Run:
    """The page's project after a flow: where it is, its database, and what it printed."""

    project: PageProject
    url: str
    outputs: dict[str, str]
    received: list[ReceivedWebhook]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, str], str]]:
    """A project folder and its database: the page's SQLite file, or a PostgreSQL database
    of our own named the page's way (``FLASK_SQLALCHEMY_DATABASE_URI``)."""
    directory = tmp_path_factory.mktemp(f"blog-{request.param}")
    if request.param == "sqlite":
        yield directory, {}, f"sqlite:///{directory / 'instance' / 'blog.db'}"
        return
    with postgres_database() as name:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        yield directory, {"FLASK_SQLALCHEMY_DATABASE_URI": url}, url


@pytest.fixture(scope="module")
def quickstart(database: tuple[Path, dict[str, str], str]) -> Iterator[Run]:
    """The quickstart flow played against a receiver standing in for ``thorn listen``."""
    directory, env, url = database
    receiver, replace = listening_receiver()
    try:
        project = PageProject(PAGE, directory, env=env, replace=replace)
        outputs = project.run("quickstart")
        yield Run(project, url, outputs, receiver.wait_for(2, timeout=10))
    finally:
        receiver.stop()


def tables(url: str) -> set[str]:
    """The tables that exist in the database at ``url``."""
    engine = sqlalchemy.create_engine(url)
    try:
        return set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


class TestQuickstart:
    """The page's blog, ``flask init-db``, ``flask thorn add`` and ``flask publish``."""

    def test_page_flows_are_all_tested(self) -> None:
        """The page's command flows are the three this module runs."""
        assert flows(PAGE) == {"quickstart", "migrations", "celery"}

    def test_one_call_creates_every_table(self, quickstart: Run) -> None:
        """``flask init-db`` (``db.create_all()``) made the blog's table and Thorn's three."""
        assert tables(quickstart.url) >= TABLES

    def test_articles_arrive_signed(self, quickstart: Run) -> None:
        """Both article events reach the receiver on 127.0.0.1, signed with the secret that
        ``flask thorn add`` printed, with the article's URL as ``ref``."""
        added = quickstart.outputs[
            "flask thorn add http://127.0.0.1:8765/webhooks --event 'article.*'"
        ]
        secret = re.search(r"Secret \(shown once\): (\S+)", added)
        assert secret is not None, added

        verified = [verify_request(w.headers, w.body, secret.group(1)) for w in quickstart.received]

        assert [v.event for v in verified] == ["article.created", "article.published"]
        assert [v.payload["ref"] for v in verified] == ["http://blog.example/articles/1"] * 2
        assert verified[1].payload["data"] == {"title": "Webhooks with Flask", "state": "PUBLISHED"}

    def test_deliveries_are_logged_in_the_database(self, quickstart: Run) -> None:
        """The two attempts are rows of ``thorn_delivery_attempt`` in the blog's database."""
        engine = sqlalchemy.create_engine(quickstart.url)
        with engine.connect() as connection:
            logged = connection.execute(
                sqlalchemy.text("SELECT event, ok FROM thorn_delivery_attempt")
            )
            assert sorted(logged.all()) == [("article.created", True), ("article.published", True)]
        engine.dispose()

    def test_the_port_rule_refuses_other_ports(self, quickstart: Run) -> None:
        """With the page's debug validators, a local URL on another port than the
        receiver's is refused by ``flask thorn add``, with the port rule's reason."""
        refused = quickstart.project.command("flask thorn add http://127.0.0.1:9/hooks --event '*'")

        assert refused is not None
        assert refused.returncode != 0
        assert "port 9 is not one of 80, 443" in refused.stderr


class TestMigrations:
    """The page's Flask-Migrate recipe: ``db init``, ``migrate``, ``upgrade`` and ``check``."""

    @pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
    def test_autogenerate_creates_every_table(self, tmp_path: Path, backend: str) -> None:
        """On a fresh database, the generated revision creates the blog's and Thorn's tables
        (no duplicate table keys), and then ``flask db check`` finds nothing to change."""
        pytest.importorskip("flask_migrate", reason="the test extra installs flask-migrate")
        with contextlib.ExitStack() as stack:
            url = f"sqlite:///{tmp_path / 'instance' / 'blog.db'}"
            env = {}
            if backend == "postgresql":
                name = stack.enter_context(postgres_database())
                url = env["FLASK_SQLALCHEMY_DATABASE_URI"] = (
                    f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                )
            project = PageProject(PAGE, tmp_path, env=env)

            outputs = project.run("migrations")

            assert tables(url) >= TABLES | {"alembic_version"}
        (revision,) = (tmp_path / "migrations" / "versions").glob("*.py")
        created = set(re.findall(r"op\.create_table\('(\w+)'", revision.read_text()))
        assert created == TABLES
        assert "No new upgrade operations detected" in outputs["flask --app wsgi db check"]


def redis_or_skip() -> None:
    """Skip when no Redis listens on 127.0.0.1:6379; fail instead when ``CI=true``."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at 127.0.0.1:6379 is unreachable on CI: {exc}")
        pytest.skip(f"Redis at 127.0.0.1:6379 is unreachable: {exc}")


def forget_queue(queue: str) -> None:
    """Remove ``queue`` and its bindings from the Redis broker the page names."""
    from celery import Celery

    from ..celery._celery_support import delete_queue

    capp = Celery("cleanup", broker="redis://127.0.0.1:6379/0", set_as_current=False)
    try:
        delete_queue(capp, queue)
    finally:
        capp.close()


class TestWithCelery:
    """The page's Flask + Celery module: the web app publishes, a real worker delivers."""

    def test_worker_delivers_in_the_app_context(self, tmp_path: Path) -> None:
        """``flask publish`` only publishes; the page's ``celery worker`` (Redis, its own
        queue) delivers both article events, signed, with the blog's subscribers."""
        pytest.importorskip("celery")
        redis_or_skip()
        receiver, replace = listening_receiver()
        queue = f"blog-webhooks-{uuid.uuid4().hex[:8]}"
        project = PageProject(PAGE, tmp_path, replace={**replace, "blog-webhooks": queue})
        try:
            outputs = project.run("celery")
            received = receiver.wait_for(2, timeout=30)
        finally:
            printed = project.stop()
            receiver.stop()
            forget_queue(queue)

        added = outputs["flask thorn add http://127.0.0.1:8765/webhooks --event 'article.*'"]
        secret = re.search(r"Secret \(shown once\): (\S+)", added)
        assert secret is not None, added
        verified = [verify_request(w.headers, w.body, secret.group(1)) for w in received]
        events = sorted(v.event for v in verified)  # two tasks, on two threads
        assert events == ["article.created", "article.published"], printed


class TestDeclareTables:
    """``thorn_flask.models.declare_tables``: Thorn's tables in an application's metadata."""

    def test_tables_join_the_metadata_once(self) -> None:
        """The tables are copied into the metadata, and declaring them again changes nothing."""
        metadata = sqlalchemy.MetaData()

        first = declare_tables(metadata, Subscriber, DeliveryAttempt, OutboxEvent)
        again = declare_tables(metadata, DeliveryAttempt)

        assert set(metadata.tables) == {
            "thorn_subscriber",
            "thorn_delivery_attempt",
            "thorn_outbox",
        }
        assert again == [first[1]]
        assert first[1] is not DeliveryAttempt.__table__

    def test_a_table_of_the_same_name_is_kept(self) -> None:
        """An application's own ``thorn_subscriber`` table stays, not replaced by the ready one."""
        metadata = sqlalchemy.MetaData()
        own = sqlalchemy.Table(
            "thorn_subscriber",
            metadata,
            sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        )

        (held,) = declare_tables(metadata, Subscriber)

        assert held is own

    def test_init_app_declares_them_on_the_subscriber_bind(self, tmp_path: Path) -> None:
        """With a subscriber model on a bind key, ``init_app`` puts Thorn's tables in that
        bind's metadata, and ``db.create_all()`` creates them in that bind's database."""
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy

        from thorn_flask import SubscriberMixin, Thorn

        db = SQLAlchemy()

        class Hook(SubscriberMixin, db.Model):
            __bind_key__ = "hooks"

        app = Flask(__name__)
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'app.db'}"
        app.config["SQLALCHEMY_BINDS"] = {"hooks": f"sqlite:///{tmp_path / 'hooks.db'}"}
        db.init_app(app)
        Thorn(app, db=db, model=Hook, current_user=lambda: None)
        with app.app_context():
            db.create_all()
            engines = {key: db.engines[key] for key in (None, "hooks")}
            created = {key: tables(str(engine.url)) for key, engine in engines.items()}
            db.session.remove()
            for engine in engines.values():
                engine.dispose()

        assert created == {
            None: set(),
            "hooks": {"thorn_subscriber", "thorn_delivery_attempt", "thorn_outbox"},
        }

    def test_a_class_without_a_table_is_refused(self) -> None:
        """Something that is not a mapped class raises TypeError naming it."""
        with pytest.raises(TypeError, match="is not a mapped class with a table"):
            declare_tables(sqlalchemy.MetaData(), dict)


def hand_written_revisions() -> list[str]:
    """The page's Alembic revisions written by hand (``def upgrade(): ...`` blocks)."""
    return [b.code for b in code_blocks(PAGE.read_text()) if b.code.startswith("def upgrade():")]


class TestHandWrittenRevisions:
    """The revisions the page shows for writing by hand make the tables the models describe."""

    def test_page_has_them(self) -> None:
        """The subscriber table's revision and the log and outbox tables' revision."""
        assert len(hand_written_revisions()) == 2

    @pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
    def test_upgrade_matches_the_models(self, tmp_path: Path, backend: str) -> None:
        """After both ``upgrade()``, Alembic finds no difference between the database and
        Thorn's models (tables, columns, types, nullability, indexes)."""
        pytest.importorskip("alembic", reason="the test extra installs flask-migrate")
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext
        from alembic.operations import Operations

        metadata = sqlalchemy.MetaData()
        declare_tables(metadata, Subscriber, DeliveryAttempt, OutboxEvent)
        with contextlib.ExitStack() as stack:
            url = f"sqlite:///{tmp_path / 'hand.db'}"
            if backend == "postgresql":
                name = stack.enter_context(postgres_database())
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
            engine = sqlalchemy.create_engine(url)
            stack.callback(engine.dispose)
            with engine.begin() as connection:
                namespace = {
                    "op": Operations(MigrationContext.configure(connection)),
                    "sa": sqlalchemy,
                }
                for code in hand_written_revisions():
                    exec(code, namespace)  # noqa: S102 - the documentation's own revision
                    namespace["upgrade"]()

                diffs = compare_metadata(MigrationContext.configure(connection), metadata)

        assert diffs == []
