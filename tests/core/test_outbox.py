"""The transactional outbox: stored in the transaction, relayed after commit, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from thorn_core import EventMessage, Subscriber, Thorn
from thorn_core.exceptions import SerializationError
from thorn_core.fanout import delivery_id_for
from thorn_core.outbox import Outbox, OutboxRelay, relay
from thorn_core.receiver import WebhookReceiver

from ._sqlite_outbox import SQLiteOutbox

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-s3cret"


class CrashingOutbox(SQLiteOutbox):
    """An outbox whose first ``done`` dies, as a relay killed between dispatch and done."""

    crashed = False

    def done(self, ids: Sequence[Any]) -> None:
        if not self.crashed:
            self.crashed = True
            raise SystemExit("relay killed")
        super().done(ids)


def outbox_app(make_app: Callable[..., Thorn], url: str, outbox: Outbox, **settings: Any) -> Thorn:
    """An app with THORN_OUTBOX on, the outbox set (as an adapter does) and one subscriber."""
    app = make_app(
        {
            "THORN_OUTBOX": True,
            "THORN_SUBSCRIBERS": {"order.*": {"url": url, "hmac_secret": SECRET}},
            **settings,
        }
    )
    app.outbox = outbox
    return app


class TestStoring:
    """Events sent inside a transaction are stored in it, not dispatched."""

    def test_outbox_protocol(self, tmp_path: Path) -> None:
        """The test double implements the core's Outbox protocol."""
        assert isinstance(SQLiteOutbox(tmp_path / "o.db"), Outbox)

    def test_stored_until_relay(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """A send in a transaction is stored; the receiver gets it only when the relay runs."""
        outbox = SQLiteOutbox(tmp_path / "o.db")
        app = outbox_app(make_app, receiver.url(), outbox)
        with outbox.transaction():
            result = app.event("order.paid").send({"id": 1})
        assert result.state == "stored"
        assert result.deliveries == []
        time.sleep(0.1)
        assert receiver.received == []
        assert outbox.rows() == [(1, "order.paid", False)]
        assert relay(app) == 1
        (got,) = receiver.wait_for(1)
        assert got.json() == {"id": 1}
        assert got.standard_webhook_valid(SECRET)
        assert outbox.rows() == [(1, "order.paid", True)]

    def test_rollback_stores_nothing(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """A transaction that rolls back leaves no event, and the relay sends nothing."""
        outbox = SQLiteOutbox(tmp_path / "o.db")
        app = outbox_app(make_app, receiver.url(), outbox)

        def pay() -> None:
            with outbox.transaction():
                app.event("order.paid").send({"id": 1})
                raise RuntimeError("payment declined")

        with pytest.raises(RuntimeError, match="declined"):
            pay()
        assert outbox.rows() == []
        assert relay(app) == 0
        assert receiver.received == []

    def test_outside_a_transaction_sent_at_once(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """With no transaction open, the event is dispatched as usual."""
        outbox = SQLiteOutbox(tmp_path / "o.db")
        app = outbox_app(make_app, receiver.url(), outbox)
        result = app.event("order.paid").send({"id": 1})
        assert result.state == "delivered"
        assert result.ok
        assert outbox.rows() == []

    def test_setting_off_ignores_the_outbox(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """With THORN_OUTBOX off, a send in a transaction is dispatched at once."""
        outbox = SQLiteOutbox(tmp_path / "o.db")
        app = outbox_app(make_app, receiver.url(), outbox, THORN_OUTBOX=False)
        with outbox.transaction():
            assert app.event("order.paid").send({}).state == "delivered"
        assert outbox.rows() == []

    def test_unserializable_payload_raises_at_send(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """A payload with no JSON form raises at send(), and nothing is stored."""
        outbox = SQLiteOutbox(tmp_path / "o.db")
        app = outbox_app(make_app, receiver.url(), outbox)
        with outbox.transaction(), pytest.raises(SerializationError, match="object"):
            app.event("order.paid").send({"bad": object()})
        assert outbox.rows() == []

    def test_relay_without_outbox(self, app: Thorn) -> None:
        """Relaying an app with no outbox is an error that says what is missing."""
        with pytest.raises(RuntimeError, match="no outbox"):
            relay(app)


class TestRelay:
    """The relay dispatches stored events once, and again only after a crash."""

    def test_relay_twice_does_not_resend(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """A second relay finds nothing: each event is delivered once."""
        outbox = SQLiteOutbox(tmp_path / "o.db")
        app = outbox_app(make_app, receiver.url(), outbox)
        with outbox.transaction():
            for n in range(3):
                app.event("order.paid").send({"n": n})
        assert relay(app) == 3
        assert relay(app) == 0
        time.sleep(0.1)
        assert sorted(r.json()["n"] for r in receiver.received) == [0, 1, 2]

    def test_limit_batches(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """relay(limit=) takes at most that many events per call, oldest first."""
        outbox = SQLiteOutbox(tmp_path / "o.db")
        app = outbox_app(make_app, receiver.url(), outbox)
        with outbox.transaction():
            for n in range(5):
                app.event("order.paid").send({"n": n})
        counts = []
        for _ in range(4):
            counts.append(relay(app, limit=2))
            receiver.wait_for(sum(counts))
        assert counts == [2, 2, 1, 0]
        batches = [sorted(r.json()["n"] for r in receiver.received[i : i + 2]) for i in (0, 2, 4)]
        assert batches == [[0, 1], [2, 3], [4]]

    def test_crash_between_dispatch_and_done_resends_same_ids(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """A relay dying after dispatch re-dispatches later with the SAME delivery ids."""
        outbox = CrashingOutbox(tmp_path / "o.db", lease=0.2)
        app = outbox_app(make_app, receiver.url(), outbox)
        with outbox.transaction():
            app.event("order.paid").send({"n": 1})
            app.event("order.paid").send({"n": 2})
        with pytest.raises(SystemExit):
            relay(app)
        first = receiver.wait_for(2)
        assert relay(app) == 0  # leased: a concurrent relay does not take them
        time.sleep(0.25)
        assert relay(app) == 2
        received = receiver.wait_for(4)
        ids = [r.delivery_id for r in received]
        assert sorted(ids[2:]) == sorted(r.delivery_id for r in first)
        assert len(set(ids)) == 2  # duplicates, deduplicated by Hook-Delivery
        assert relay(app) == 0


class TestBackgroundRelay:
    """OutboxRelay relays in a thread, for sites without Celery."""

    def test_delivers_soon_and_stops(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """A committed event reaches the receiver within a second or two; stop() joins."""
        outbox = SQLiteOutbox(tmp_path / "o.db")
        app = outbox_app(make_app, receiver.url(), outbox)
        background = OutboxRelay(app, interval=0.05, limit=2).start()
        try:
            with outbox.transaction():
                for n in range(5):
                    app.event("order.paid").send({"n": n})
            got = receiver.wait_for(5, timeout=2)
        finally:
            started = time.monotonic()
            background.stop()
        assert time.monotonic() - started < 1
        assert sorted(r.json()["n"] for r in got) == [0, 1, 2, 3, 4]
        assert all(done for _, _, done in outbox.rows())

    def test_survives_a_failing_outbox(
        self,
        make_app: Callable[..., Thorn],
        receiver: WebhookReceiver,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A relay error is logged and the thread tries again; the event still arrives."""
        outbox = FlakyOutbox(tmp_path / "o.db")
        app = outbox_app(make_app, receiver.url(), outbox)
        with outbox.transaction():
            app.event("order.paid").send({})
        background = OutboxRelay(app, interval=0.05).start()
        try:
            receiver.wait_for(1, timeout=2)
        finally:
            background.stop()
        assert "Relaying the Thorn outbox failed" in caplog.text


class FlakyOutbox(SQLiteOutbox):
    """An outbox whose database is unreachable at the first claim."""

    failed = False

    def claim(self, limit: int) -> list[Any]:
        if not self.failed:
            self.failed = True
            raise OSError("database is restarting")
        return super().claim(limit)


#: The child: stores an event in the outbox, commits, and is SIGKILLed before any relay.
_CHILD = """
import os, signal, sys
from thorn_core import EventMessage, Subscriber, Thorn
from thorn_core.testing import loopback_validators
from tests.core._sqlite_outbox import SQLiteOutbox

outbox = SQLiteOutbox(sys.argv[1])
app = Thorn({
    "THORN_OUTBOX": True,
    "THORN_RECIPIENT_VALIDATORS": loopback_validators(),
    "THORN_SUBSCRIBERS": {"order.*": {"url": sys.argv[2], "hmac_secret": "s3cret-s3cret"}},
})
app.outbox = outbox
with outbox.transaction():
    result = app.event("order.paid").send({"id": 99})
    assert result.state == "stored"
os.kill(os.getpid(), signal.SIGKILL)
"""


class TestCrash:
    """A process killed after commit and before dispatch loses nothing."""

    def test_sigkill_after_commit_relay_delivers(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        """The child commits and dies by SIGKILL; the parent's relay delivers the event once."""
        path = tmp_path / "o.db"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        child = subprocess.run(  # noqa: S603 - our interpreter, our script
            [sys.executable, "-c", textwrap.dedent(_CHILD), str(path), receiver.url()],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr.decode()
        assert receiver.received == []
        outbox = SQLiteOutbox(path)
        app = outbox_app(make_app, receiver.url(), outbox)
        assert relay(app) == 1
        (got,) = receiver.wait_for(1)
        assert got.json() == {"id": 99}
        assert relay(app) == 0


class TestDeliveryIds:
    """Delivery ids derive from the message id and the subscriber, so duplicates share them."""

    def test_same_message_same_ids(self, app: Thorn) -> None:
        """A message carried through the outbox (to_dict/from_dict) keeps its delivery ids."""
        first = Subscriber(url="http://127.0.0.1/a")
        second = Subscriber(url="http://127.0.0.1/b")
        message = app.event("a.b").prepare({"n": 1})
        again = EventMessage.from_dict(message.to_dict())
        assert delivery_id_for(again, first) == delivery_id_for(message, first)
        assert delivery_id_for(message, first) != delivery_id_for(message, second)
        other = app.event("a.b").prepare({"n": 1})
        assert delivery_id_for(other, first) != delivery_id_for(message, first)
