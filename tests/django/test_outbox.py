"""The transactional outbox: stored in the transaction, relayed after commit, never lost."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from thorn_core.outbox import relay
from thorn_core.receiver import WebhookReceiver
from thorn_django import get_app
from thorn_django.models import OutboxEvent
from thorn_django.outbox import DjangoOutbox, DjangoOutboxRelay

from .testapp.models import Article

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("loopback", "outbox_on"),
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def outbox_on(settings: Any) -> None:
    """``THORN_OUTBOX = True``."""
    settings.THORN_OUTBOX = True


def relay_command() -> str:
    """Run ``manage.py thorn_relay`` and return what it printed."""
    out = StringIO()
    call_command("thorn_relay", stdout=out)
    return out.getvalue()


def quiet(receiver: WebhookReceiver, seconds: float = 0.2) -> int:
    """How many webhooks the receiver got after waiting ``seconds`` more."""
    time.sleep(seconds)
    return len(receiver.received)


class TestStoring:
    def test_send_in_a_transaction_is_stored(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """Inside ``atomic()`` a send is stored, delivered by nobody until the relay runs."""
        subscribe("order.*", receiver.url("/hook"))
        with transaction.atomic():
            result = get_app().event("order.paid").send({"id": 1})
            assert result.state == "stored"
        assert OutboxEvent.objects.filter(done_at__isnull=True).count() == 1
        assert quiet(receiver) == 0
        assert relay_command() == "Relayed 1 events\n"
        (webhook,) = receiver.wait_for(1)
        assert (webhook.event, webhook.json()) == ("order.paid", {"id": 1})
        assert OutboxEvent.objects.get().done_at is not None
        assert relay_command() == "Relayed 0 events\n"
        assert quiet(receiver) == 1

    def test_rollback_stores_nothing(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """A rolled-back transaction leaves no event, and nothing is ever delivered."""
        subscribe("*", receiver.url("/hook"))
        with contextlib.suppress(RuntimeError), transaction.atomic():
            get_app().event("order.paid").send({"id": 1})
            Article.objects.create(title="never")
            raise RuntimeError("roll back")
        assert not OutboxEvent.objects.exists()
        assert relay_command() == "Relayed 0 events\n"
        assert quiet(receiver) == 0

    def test_outside_a_transaction_dispatched_at_once(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """Without an open transaction there is nothing to wait for: delivered now."""
        subscribe("order.*", receiver.url("/hook"))
        result = get_app().event("order.paid").send({"id": 1})
        assert result.state == "delivered"
        assert len(receiver.received) == 1
        assert not OutboxEvent.objects.exists()

    def test_model_events_join_the_transaction(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """A model event is written with the row it describes; the relay sends it."""
        subscribe("article.*", receiver.url("/hook"))
        with transaction.atomic():
            article = Article.objects.create(title="Stored")
            assert OutboxEvent.objects.count() == 1
        assert quiet(receiver) == 0
        relay_command()
        (webhook,) = receiver.wait_for(1)
        assert webhook.event == "article.created"
        assert webhook.json()["data"]["title"] == article.title

    def test_off_dispatches_as_before(
        self, settings: Any, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """With ``THORN_OUTBOX = False`` nothing is stored, even inside a transaction."""
        settings.THORN_OUTBOX = False
        subscribe("order.*", receiver.url("/hook"))
        with transaction.atomic():
            assert get_app().event("order.paid").send({"id": 1}).state == "delivered"
        assert not OutboxEvent.objects.exists()
        assert len(receiver.received) == 1


class TestClaiming:
    def test_claimed_rows_are_leased(self) -> None:
        """A claimed batch is not claimed again until its lease ends (a relay died)."""
        outbox = DjangoOutbox(lease=0.3)
        with transaction.atomic():
            for n in range(3):
                get_app().event("order.paid").send({"n": n})
        first = outbox.claim(2)
        assert [message.data for _, message in first] == [{"n": 0}, {"n": 1}]
        second = outbox.claim(10)
        assert [message.data for _, message in second] == [{"n": 2}]
        assert outbox.claim(10) == []
        time.sleep(0.35)
        again = outbox.claim(10)
        assert sorted(ident for ident, _ in again) == sorted(ident for ident, _ in first + second)
        outbox.done([ident for ident, _ in again])
        assert outbox.pending() == 0
        assert outbox.claim(10) == []

    def test_same_message_id_after_a_relay_crash(self, receiver: WebhookReceiver) -> None:
        """A batch dispatched again after a lost lease carries the same delivery ids."""
        from thorn_django.models import Subscriber

        Subscriber.objects.create(event="order.*", url=receiver.url("/hook"))
        outbox = DjangoOutbox(lease=0.1)
        with transaction.atomic():
            get_app().event("order.paid").send({"n": 1})
        outbox.claim(10)  # a relay that died before dispatching or marking done
        time.sleep(0.15)
        assert relay(get_app(), outbox) == 1
        assert relay(get_app(), outbox) == 0
        (webhook,) = receiver.wait_for(1)
        assert webhook.json() == {"n": 1} or webhook.json()["data"] == {"n": 1}

    def test_prune_removes_done_events(self) -> None:
        """Relayed events older than the cut-off go; pending ones stay."""
        outbox = DjangoOutbox()
        with transaction.atomic():
            for n in range(2):
                get_app().event("order.paid").send({"n": n})
        ((ident, _),) = outbox.claim(1)
        outbox.done([ident])
        assert outbox.prune(datetime.datetime.now(datetime.timezone.utc)) == 1
        assert outbox.pending() == 1


class TestRelays:
    def test_background_thread(
        self, subscribe: Callable[..., Any], receiver: WebhookReceiver
    ) -> None:
        """The in-process relay thread dispatches what commits."""
        subscribe("order.*", receiver.url("/hook"))
        background = DjangoOutboxRelay(get_app(), interval=0.05).start()
        try:
            with transaction.atomic():
                for n in range(5):
                    get_app().event("order.paid").send({"n": n})
            received = receiver.wait_for(5)
        finally:
            background.stop()
        assert sorted(webhook.json()["n"] for webhook in received) == list(range(5))
        assert quiet(receiver) == 5


def crash_database(tmp_path: Path) -> dict[str, str]:
    """The database both processes of the crash test share: a SQLite file, or the test
    PostgreSQL database of this run."""
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return {"ENGINE": settings["ENGINE"], "NAME": str(tmp_path / "crash.sqlite3")}
    keys = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")
    return {key: str(settings[key]) for key in keys}


def run_process(
    action: str, database: dict[str, str], url: str
) -> subprocess.CompletedProcess[str]:
    """Run :mod:`tests.django._outbox_crash` ``action`` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(  # noqa: S603 -- our interpreter and our script
        [sys.executable, "-m", "tests.django._outbox_crash", action, json.dumps(database), url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def pending_in(database: dict[str, str]) -> int:
    """How many events of the crash test's outbox wait for the relay."""
    if database["ENGINE"].endswith("sqlite3"):
        with contextlib.closing(sqlite3.connect(database["NAME"])) as db:
            query = "SELECT COUNT(*) FROM thorn_django_outboxevent WHERE done_at IS NULL"
            return int(db.execute(query).fetchone()[0])
    return OutboxEvent.objects.filter(done_at__isnull=True).count()


class TestCrash:
    def test_killed_after_commit_then_relayed(
        self, tmp_path: Path, receiver: WebhookReceiver
    ) -> None:
        """A process killed (SIGKILL) right after its commit loses nothing: the relay sends it."""
        database = crash_database(tmp_path)
        died = run_process("commit", database, receiver.url("/hook"))
        assert died.returncode == -signal.SIGKILL, died.stderr
        assert died.stdout.strip() == "1"
        assert quiet(receiver, 0.3) == 0
        relayed = run_process("relay", database, "-")
        assert relayed.returncode == 0, relayed.stderr
        assert relayed.stdout.strip() == "Relayed 1 events"
        (webhook,) = receiver.wait_for(1)
        assert webhook.event == "article.created"
        assert webhook.json()["data"]["title"] == "Committed, then the process died"
        assert pending_in(database) == 0
        assert quiet(receiver) == 1
