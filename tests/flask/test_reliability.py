"""Nothing lost on Flask: the SQLAlchemy delivery log, failing endpoints, redelivery through
the API and the CLI, and the transactional outbox (including a process killed after commit)."""

from __future__ import annotations

import datetime
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
from flask.testing import FlaskClient

from thorn_core import Event, signals
from thorn_core.log import AttemptRecord, utcnow
from thorn_core.outbox import OutboxRelay, relay
from thorn_core.receiver import ReceivedWebhook, WebhookReceiver
from thorn_flask import (
    DeliveryAttempt,
    OutboxEvent,
    SQLAlchemyDeliveryLog,
    SQLAlchemyOutbox,
    create_blueprint,
    get_state,
)

from .app import Article, Subscription, db, store_subscription

ROOT = Path(__file__).parents[2]


class Switch:
    """A receiver's answer that can be turned from failing (503) to working (200)."""

    def __init__(self, status: int = 503) -> None:
        self.status = status

    def __call__(self, _request: ReceivedWebhook) -> tuple[int, bytes]:
        return self.status, b"down" if self.status >= 400 else b"ok"


@pytest.fixture
def switch() -> Switch:
    """A failing answer, to be switched to 200."""
    return Switch()


@pytest.fixture
def flaky(switch: Switch) -> Iterator[WebhookReceiver]:
    """A real receiver on 127.0.0.1 that answers 503 until ``switch.status = 200``."""
    with WebhookReceiver(respond=switch) as running:
        yield running


def send(app: flask.Flask, count: int = 1, event: str = "order.paid") -> None:
    """Send ``count`` events from ``app`` (in its application context)."""
    with app.app_context():
        for number in range(count):
            Event(event).send({"number": number})


def log_of(app: flask.Flask) -> SQLAlchemyDeliveryLog:
    """The app's delivery log, which must be the SQLAlchemy one."""
    log = get_state(app).core.delivery_log
    assert isinstance(log, SQLAlchemyDeliveryLog)
    return log


def active(app: flask.Flask, row: Subscription) -> bool:
    """Whether the stored subscription is active now."""
    with app.app_context():
        found = db.session.get(Subscription, row.id)
        assert found is not None
        return found.active


def js(response: Any) -> Any:
    """The JSON body of a test-client response."""
    data = response.get_json()
    assert data is not None
    return data


def as_user(user: str) -> dict[str, str]:
    """Headers naming the user (the tests' current_user reads X-User)."""
    return {"X-User": user}


def api(app: flask.Flask) -> FlaskClient:
    """A test client with the API at ``/hooks``."""
    app.config["SERVER_NAME"] = None
    app.register_blueprint(create_blueprint(), url_prefix="/hooks")
    return app.test_client()


no_retry = {"THORN_RETRY": False}


class TestDeliveryLog:
    """Every attempt of a real delivery is in the app's database."""

    def test_the_default_log_is_in_the_database(self, app: flask.Flask) -> None:
        """With stored subscribers and no THORN_DELIVERY_LOG, attempts go to the table."""
        assert log_of(app).model is DeliveryAttempt

    def test_named_log_is_bound_to_the_app(
        self, make_app: Callable[..., flask.Flask], database: dict[str, Any]
    ) -> None:
        """THORN_DELIVERY_LOG naming the class gets the app's database."""
        app = make_app({**database, "THORN_DELIVERY_LOG": "thorn_flask.log:SQLAlchemyDeliveryLog"})
        assert log_of(app).sessions is not None

    def test_real_deliveries_are_recorded(
        self, app: flask.Flask, subscribe: Callable[..., Subscription], receiver: WebhookReceiver
    ) -> None:
        """Two events make two logged attempts with status, headers and excerpt."""
        row = subscribe(receiver.url("/hook"), "order.*")
        send(app, 2)
        received = receiver.wait_for(2)
        log = log_of(app)
        for webhook in received:
            assert webhook.delivery_id is not None
            (attempt,) = log.attempts(webhook.delivery_id)
            assert attempt.ok
            assert attempt.status_code == 200
            assert attempt.subscriber_uuid == str(row.uuid)
            assert attempt.response_excerpt == "ok"
            assert attempt.request_headers["Hook-Delivery"] == webhook.delivery_id
            assert attempt.at.tzinfo is not None
        assert log.failed(str(row.uuid)) == []

    def test_streak_deactivates_after_the_limit(
        self,
        make_app: Callable[..., flask.Flask],
        database: dict[str, Any],
        flaky: WebhookReceiver,
    ) -> None:
        """Three failures in a row (limit 3, no window) switch the subscription off once."""
        app = make_app(
            {**database, **no_retry, "THORN_FAILURE_LIMIT": 3, "THORN_FAILURE_WINDOW": 0}
        )
        row = store_subscription(app, flaky.url("/hook"), "order.*")
        seen: list[Any] = []

        def on_deactivated(sender: Any, **kwargs: Any) -> None:
            seen.append(kwargs["subscriber"].uuid)

        signals.subscriber_deactivated.connect(on_deactivated, weak=False)
        try:
            send(app, 2)
            assert log_of(app).streak(str(row.uuid)).count == 2
            assert active(app, row)
            send(app, 1)
        finally:
            signals.subscriber_deactivated.disconnect(on_deactivated)
        assert not active(app, row)
        assert seen == [row.uuid]
        send(app, 1)  # no longer matched: nothing is sent
        assert len(flaky.received) == 3

    def test_a_success_resets_the_streak(
        self,
        make_app: Callable[..., flask.Flask],
        database: dict[str, Any],
        flaky: WebhookReceiver,
        switch: Switch,
    ) -> None:
        """Failures, one success, one failure: the streak is one."""
        app = make_app({**database, **no_retry})
        row = store_subscription(app, flaky.url("/hook"), "order.*")
        send(app, 2)
        switch.status = 200
        send(app, 1)
        switch.status = 500
        send(app, 1)
        streak = log_of(app).streak(str(row.uuid))
        assert streak.count == 1
        assert streak.since is not None
        assert len(flaky.received) == 4


def record(
    subscriber: str, delivery: str, attempt: int, ok: bool, age_days: float
) -> AttemptRecord:
    """A logged attempt made ``age_days`` ago."""
    return AttemptRecord(
        delivery_id=delivery,
        event="order.paid",
        subscriber_uuid=subscriber,
        url="http://127.0.0.1/",
        attempt=attempt,
        ok=ok,
        retryable=not ok,
        status_code=200 if ok else 503,
        error=None,
        duration=0.01,
        at=utcnow() - datetime.timedelta(days=age_days),
    )


class TestPrune:
    """Pruning removes old attempts but never what redelivery or the streak still needs."""

    def test_prune_keeps_what_it_must(self, app: flask.Flask) -> None:
        """Old attempts go; the latest of a failed delivery and the latest success stay."""
        log = log_of(app)
        sub = "0b9a3f52-6a8e-4a8f-8a25-3c3f2d1d9e01"
        for rec in [
            record(sub, "a", 1, False, 10),  # a: failed, then succeeded -> both old: gone
            record(sub, "a", 2, True, 9),
            record(sub, "b", 1, False, 9),  # b: failed twice, never succeeded -> keep #2
            record(sub, "b", 2, False, 8),
            record(sub, "c", 1, True, 8.5),  # c: the subscriber's latest success -> kept
            record(sub, "d", 1, False, 1),  # d: recent -> kept
        ]:
            log.record(rec)
        removed = log.prune(utcnow() - datetime.timedelta(days=7))
        assert removed == 3
        assert [(r.delivery_id, r.attempt) for r in log.attempts("b")] == [("b", 2)]
        assert log.attempts("a") == []
        assert len(log.attempts("c")) == 1
        assert [r.delivery_id for r in log.failed(sub)] == ["b", "d"]
        assert log.streak(sub).count == 2  # b#2 and d, after c's success

    def test_prune_command(self, app: flask.Flask) -> None:
        """``flask thorn prune`` uses the retention setting by default."""
        log_of(app).record(record("s", "x", 1, True, 30))
        log_of(app).record(record("s", "y", 1, True, 20))
        result = app.test_cli_runner().invoke(args=["thorn", "prune"])
        assert result.exit_code == 0, result.output
        assert "Removed 1 delivery attempts" in result.output


def deactivated(
    make_app: Callable[..., flask.Flask], database: dict[str, Any], receiver: WebhookReceiver
) -> tuple[flask.Flask, Subscription]:
    """An app whose subscription (owned by ada) was deactivated after two failures."""
    app = make_app({**database, **no_retry, "THORN_FAILURE_LIMIT": 2, "THORN_FAILURE_WINDOW": 0})
    row = store_subscription(app, receiver.url("/hook"), "order.*", user_id="ada")
    with app.app_context():
        for number in range(2):
            Event("order.paid").send({"number": number}, sender="ada")
    assert not active(app, row)
    return app, row


class TestReenable:
    """A deactivated subscription is switched back on by its owner."""

    def test_enable_through_the_api(
        self,
        make_app: Callable[..., flask.Flask],
        database: dict[str, Any],
        flaky: WebhookReceiver,
        switch: Switch,
    ) -> None:
        """Bob gets 404; Ada re-enables it, the streak starts over and events flow again."""
        app, row = deactivated(make_app, database, flaky)
        client = api(app)
        url = f"/hooks/{row.uuid}/enable/"
        assert client.post(url, headers=as_user("bob")).status_code == 404
        answer = client.post(url, headers=as_user("ada"))
        assert answer.status_code == 200
        assert js(answer)["active"] is True
        assert log_of(app).streak(str(row.uuid)).count == 0
        switch.status = 200
        with app.app_context():
            Event("order.paid").send({"number": 9}, sender="ada")
        assert len(flaky.received) == 3

    def test_enable_command(
        self, make_app: Callable[..., flask.Flask], database: dict[str, Any], flaky: WebhookReceiver
    ) -> None:
        """``flask thorn enable`` switches it back on."""
        app, row = deactivated(make_app, database, flaky)
        result = app.test_cli_runner().invoke(args=["thorn", "enable", str(row.uuid)])
        assert result.exit_code == 0, result.output
        assert active(app, row)


class TestRedelivery:
    """Failed deliveries are sent again, under their ids, once the receiver recovers."""

    @pytest.fixture
    def failed(
        self,
        make_app: Callable[..., flask.Flask],
        database: dict[str, Any],
        flaky: WebhookReceiver,
        switch: Switch,
    ) -> tuple[flask.Flask, Subscription, list[str]]:
        """An app with three failed deliveries to ada's subscription, receiver now up."""
        app = make_app({**database, **no_retry})
        row = store_subscription(app, flaky.url("/hook"), "order.*", user_id="ada")
        with app.app_context():
            for number in range(3):
                Event("order.paid").send({"number": number}, sender="ada")
        ids = [w.delivery_id for w in flaky.received]
        assert len(set(ids)) == 3
        switch.status = 200
        return app, row, [i for i in ids if i is not None]

    def test_api_redelivers_a_subscription(
        self, failed: tuple[flask.Flask, Subscription, list[str]], flaky: WebhookReceiver
    ) -> None:
        """Every failed delivery arrives once more, same ids; Bob gets 404; the list shows it."""
        app, row, ids = failed
        client = api(app)
        url = f"/hooks/{row.uuid}/redeliver/"
        assert client.post(url, headers=as_user("bob")).status_code == 404
        answer = client.post(url, json={}, headers=as_user("ada"))
        assert answer.status_code == 200, js(answer)
        assert js(answer)["redelivered"] == 3
        assert js(answer)["failed"] == 0
        again = [w.delivery_id or "" for w in flaky.received[3:]]
        assert sorted(again) == sorted(ids)
        assert all(json.loads(w.body)["number"] in (0, 1, 2) for w in flaky.received[3:])
        assert log_of(app).failed(str(row.uuid)) == []
        assert js(client.post(url, json={}, headers=as_user("ada")))["redelivered"] == 0
        listed = client.get(f"/hooks/{row.uuid}/deliveries/", headers=as_user("ada"))
        assert listed.status_code == 200, listed.data
        assert [(a["attempt"], a["ok"]) for a in js(listed)] == [(2, True)] * 3 + [(1, False)] * 3
        failures = client.get(
            f"/hooks/{row.uuid}/deliveries/?failed=1&limit=2", headers=as_user("ada")
        )
        assert [(a["attempt"], a["ok"]) for a in js(failures)] == [(1, False)] * 2
        assert (
            client.get(f"/hooks/{row.uuid}/deliveries/", headers=as_user("bob")).status_code == 404
        )

    def test_api_since_filters(
        self, failed: tuple[flask.Flask, Subscription, list[str]], flaky: WebhookReceiver
    ) -> None:
        """A ``since`` after the failures redelivers nothing; a bad one is a 400."""
        app, row, _ids = failed
        client = api(app)
        url = f"/hooks/{row.uuid}/redeliver/"
        later = (utcnow() + datetime.timedelta(minutes=1)).isoformat()
        assert js(client.post(url, json={"since": later}, headers=as_user("ada"))) == {
            "redelivered": 0,
            "succeeded": 0,
            "failed": 0,
            "deliveries": [],
        }
        assert client.post(url, json={"since": "soon"}, headers=as_user("ada")).status_code == 400
        assert len(flaky.received) == 3

    def test_api_redelivers_one(
        self, failed: tuple[flask.Flask, Subscription, list[str]], flaky: WebhookReceiver
    ) -> None:
        """One delivery by id: its owner may, others get 404, unknown ids 404."""
        app, _row, ids = failed
        client = api(app)
        url = f"/hooks/deliveries/{ids[1]}/redeliver/"
        assert client.post(url, headers=as_user("bob")).status_code == 404
        answer = client.post(url, headers=as_user("ada"))
        assert answer.status_code == 200
        assert js(answer)["delivery_id"] == ids[1]
        assert js(answer)["attempt"] == 2
        assert js(answer)["ok"] is True
        assert [w.delivery_id for w in flaky.received[3:]] == [ids[1]]
        assert (
            client.post("/hooks/deliveries/nope/redeliver/", headers=as_user("ada")).status_code
            == 404
        )

    def test_cli_redelivers(
        self, failed: tuple[flask.Flask, Subscription, list[str]], flaky: WebhookReceiver
    ) -> None:
        """``--delivery`` sends one, ``--subscriber`` the rest with progress."""
        app, row, ids = failed
        runner = app.test_cli_runner()
        one = runner.invoke(args=["thorn", "redeliver", "--delivery", ids[0]])
        assert one.exit_code == 0, one.output
        assert f"{ids[0]} attempt 2: HTTP 200" in one.output
        rest = runner.invoke(args=["thorn", "redeliver", "--subscriber", str(row.uuid)])
        assert rest.exit_code == 0, rest.output
        assert "[1/2]" in rest.output
        assert "[2/2]" in rest.output
        assert "Redelivered 2 deliveries, 0 failed again" in rest.output
        assert sorted(w.delivery_id or "" for w in flaky.received[3:]) == sorted(ids)
        bad = runner.invoke(args=["thorn", "redeliver"])
        assert bad.exit_code == 2


@pytest.fixture
def outbox_app(
    make_app: Callable[..., flask.Flask], database: dict[str, Any], receiver: WebhookReceiver
) -> flask.Flask:
    """An app with THORN_OUTBOX on and the receiver subscribed to everything."""
    app = make_app({**database, "THORN_OUTBOX": True})
    with app.app_context():
        db.session.add(Subscription(url=receiver.url("/hook"), event="*"))
        db.session.commit()
    return app


def pending(app: flask.Flask) -> int:
    """Events stored in the app's outbox and not dispatched."""
    outbox = get_state(app).outbox
    assert isinstance(outbox, SQLAlchemyOutbox)
    return outbox.pending()


class TestOutbox:
    """Events sent in a transaction are stored with it and relayed after commit."""

    def test_outbox_is_set(self, outbox_app: flask.Flask) -> None:
        """THORN_OUTBOX gives the core app the SQLAlchemy outbox."""
        assert isinstance(get_state(outbox_app).core.outbox, SQLAlchemyOutbox)

    def test_stored_not_delivered_then_relayed(
        self, outbox_app: flask.Flask, receiver: WebhookReceiver
    ) -> None:
        """Inside a transaction the send is stored; after commit the relay delivers it."""
        with outbox_app.app_context():
            db.session.add(Article(title="draft"))
            db.session.flush()
            result = Event("order.paid").send({"n": 1})
            assert result.state == "stored"
            db.session.commit()
        assert receiver.received == []
        assert pending(outbox_app) == 2  # order.paid, and article.created from the flush
        assert relay(get_state(outbox_app).core) == 2
        events = sorted(w.event or "" for w in receiver.wait_for(2))
        assert events == ["article.created", "order.paid"]
        assert pending(outbox_app) == 0
        assert relay(get_state(outbox_app).core) == 0
        assert len(receiver.received) == 2

    def test_rollback_stores_nothing(
        self, outbox_app: flask.Flask, receiver: WebhookReceiver
    ) -> None:
        """A rolled-back transaction leaves no event, and the relay sends nothing."""
        with outbox_app.app_context():
            db.session.add(Article(title="never"))
            db.session.flush()
            assert Event("order.paid").send({"n": 1}).state == "stored"
            db.session.rollback()
            assert db.session.query(OutboxEvent).count() == 0
        assert relay(get_state(outbox_app).core) == 0
        assert receiver.received == []

    def test_no_transaction_dispatches_at_once(
        self, outbox_app: flask.Flask, receiver: WebhookReceiver
    ) -> None:
        """With no transaction open the event is delivered as usual."""
        with outbox_app.app_context():
            assert Event("order.paid").send({"n": 1}).state == "delivered"
        assert len(receiver.received) == 1
        assert pending(outbox_app) == 0

    def test_claims_do_not_overlap(self, outbox_app: flask.Flask) -> None:
        """A claimed event is not claimed again until its lease runs out."""
        with outbox_app.app_context():
            db.session.begin()
            for n in range(3):
                Event("order.paid").send({"n": n})
            db.session.commit()
        outbox = get_state(outbox_app).outbox
        assert outbox is not None
        first = outbox.claim(2)
        second = outbox.claim(2)
        assert len(first) == 2
        assert len(second) == 1
        assert {i for i, _ in first}.isdisjoint(i for i, _ in second)
        assert outbox.claim(5) == []
        outbox.done([i for i, _ in first + second])
        assert outbox.pending() == 0

    def test_relay_command_and_thread(
        self, outbox_app: flask.Flask, receiver: WebhookReceiver
    ) -> None:
        """``flask thorn relay`` and the OutboxRelay thread both dispatch stored events."""
        with outbox_app.app_context():
            db.session.begin()
            Event("order.paid").send({"n": 1})
            db.session.commit()
        result = outbox_app.test_cli_runner().invoke(args=["thorn", "relay"])
        assert result.exit_code == 0, result.output
        assert "Relayed 1 events" in result.output
        receiver.wait_for(1)
        with outbox_app.app_context():
            db.session.begin()
            Event("order.paid").send({"n": 2})
            db.session.commit()
        background = OutboxRelay(get_state(outbox_app).core, interval=0.05).start()
        try:
            receiver.wait_for(2)
        finally:
            background.stop()
        assert len(receiver.received) == 2


class TestCrash:
    """A process killed right after its commit loses nothing: the relay sends the event."""

    def test_sigkill_after_commit(self, outbox_app: flask.Flask, receiver: WebhookReceiver) -> None:
        """The child commits an article and dies by SIGKILL; the parent's relay delivers it."""
        config = {
            key: outbox_app.config[key]
            for key in ("SQLALCHEMY_DATABASE_URI", "SQLALCHEMY_ENGINE_OPTIONS")
            if key in outbox_app.config
        }
        child = subprocess.run(  # noqa: S603 -- our own module, with this interpreter
            [sys.executable, "-m", "tests.flask._crash_child", json.dumps(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr
        assert "committed" in child.stdout
        with outbox_app.app_context():
            assert db.session.query(Article).count() == 1
        assert receiver.received == []  # the child never dispatched
        assert pending(outbox_app) == 1
        result = outbox_app.test_cli_runner().invoke(args=["thorn", "relay"])
        assert result.exit_code == 0, result.output
        (webhook,) = receiver.wait_for(1)
        assert webhook.event == "article.created"
        assert json.loads(webhook.body)["data"]["title"] == "committed, then killed"
        assert outbox_app.test_cli_runner().invoke(args=["thorn", "relay"]).exit_code == 0
        assert len(receiver.received) == 1
