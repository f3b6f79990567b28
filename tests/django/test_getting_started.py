"""docs/django.md's getting started runs as written: a new project, ``migrate``, ``check``, a
subscriber, and signed webhooks at a receiver on 127.0.0.1, on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from thorn_core.receiver import ReceivedWebhook
from thorn_core.verification import verify_request

from .._page_projects import PageProject, flows, listening_receiver, postgres_database

PAGE = Path(__file__).parents[2] / "docs" / "django.md"
ADD = 'python manage.py thorn_subscribers add "order.*" http://127.0.0.1:8765/orders'


@attrs.frozen
class Run:
    """The page's project after its flow: the project, a query function, what it printed
    and what the receiver got."""

    project: PageProject
    database: str | None
    outputs: dict[str, str]
    received: list[ReceivedWebhook]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` in the project's database (its SQLite file, or PostgreSQL)."""
        if self.database is None:
            with sqlite3.connect(self.project.directory / "db.sqlite3") as connection:
                return connection.execute(sql).fetchall()
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{self.database}") as conn:
            return conn.execute(sql).fetchall()


def postgres_settings(name: str) -> str:
    """The lines a project adds to its settings to use the PostgreSQL database ``name``."""
    return (
        'DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", '
        f'"NAME": "{name}", "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"}}}}\n'
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def quickstart(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """The page's flow in a new folder, against a receiver standing in for ``thorn listen``:
    on the project's SQLite file, or on a PostgreSQL database of our own."""
    directory = tmp_path_factory.mktemp(f"shop-{request.param}")
    with postgres_database() if request.param == "postgresql" else contextlib.nullcontext() as name:
        receiver, replace = listening_receiver()
        try:
            appended = {} if name is None else {"mysite/settings.py": postgres_settings(name)}
            project = PageProject(PAGE, directory, replace=replace, appended=appended)
            outputs = project.run("quickstart")
            yield Run(project, name, outputs, receiver.wait_for(2, timeout=10))
        finally:
            receiver.stop()


class TestGettingStarted:
    """A project built from the page: ``startproject``, its settings, models and urls."""

    def test_page_flows_are_all_tested(self) -> None:
        """The page's only command flow is the one this module runs."""
        assert flows(PAGE) == {"quickstart"}

    def test_check_passes_with_the_page_settings(self, quickstart: Run) -> None:
        """``manage.py check`` finds nothing wrong with the settings the page shows but the
        reminder to encrypt secrets at rest (thorn.W001), as the page says."""
        output = quickstart.outputs["python manage.py check"]
        assert "(thorn.W001) THORN_SECRET_KEYS is not set" in output
        assert "System check identified 1 issue (0 silenced)." in output

    def test_orders_arrive_signed(self, quickstart: Run) -> None:
        """Saving and paying an order sends both events to the receiver, signed with the
        secret that ``thorn_subscribers add`` printed."""
        secret = re.search(r"Secret \(shown once\): (\S+)", quickstart.outputs[ADD])
        assert secret is not None, quickstart.outputs[ADD]

        verified = [verify_request(w.headers, w.body, secret.group(1)) for w in quickstart.received]

        assert [v.event for v in verified] == ["order.created", "order.paid"]
        assert [v.payload["data"]["state"] for v in verified] == ["NEW", "PAID"]

    def test_ref_is_the_reversed_url_on_the_site(self, quickstart: Run) -> None:
        """``ref`` is the ``order-detail`` URL the page's urls define, on the default Site
        (``SITE_ID = 1``, ``example.com``)."""
        refs = [webhook.json()["ref"] for webhook in quickstart.received]

        assert refs == ["https://example.com/orders/1/"] * 2

    def test_deliveries_are_logged_in_the_database(self, quickstart: Run) -> None:
        """Both attempts are rows of the delivery log in the project's database."""
        rows = quickstart.query("SELECT event, ok FROM thorn_django_deliveryattempt ORDER BY id")

        assert [tuple(row) for row in rows] == [("order.created", True), ("order.paid", True)]

    def test_the_page_test_passes(self, quickstart: Run) -> None:
        """The test the page shows passes under pytest-django, with its loopback fixture and
        Thorn's ``webhook_receiver``."""
        ran = quickstart.outputs["python -m pytest --ds=mysite.settings shop/tests.py"]

        assert re.search(r"\b1 passed\b", ran), ran

    def test_the_port_rule_refuses_other_ports(self, quickstart: Run) -> None:
        """With the page's development validators, a local URL on another port than the
        receiver's is refused by ``thorn_subscribers add``, with the port rule's reason."""
        refused = quickstart.project.command(
            'python manage.py thorn_subscribers add "*" http://127.0.0.1:9/orders'
        )

        assert refused is not None
        assert refused.returncode != 0
        assert "port 9 is not one of 80, 443" in refused.stderr
