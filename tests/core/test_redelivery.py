"""Redelivery: a logged delivery sent again under its id, freshly signed, with its body."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from thorn_core import Event, Subscriber, Thorn
from thorn_core.log import utcnow
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver
from thorn_core.redelivery import RedeliveryError, redeliver, redeliver_failed
from thorn_core.verification import verify_request

SECRET = "s3cret-s3cret"


class Switch:
    """A receiver's answer the test flips: 503 while ``failing``, else 200."""

    def __init__(self) -> None:
        self.failing = True

    def __call__(self, _request: ReceivedWebhook) -> Reply:
        return (503, b"busy") if self.failing else (200, b"ok")


class StoredSource:
    """A stored-subscriber source with ``get`` (as the adapters' stores have)."""

    def __init__(self, *subscribers: Subscriber) -> None:
        self.subscribers = {str(s.uuid): s for s in subscribers}

    def matching(self, event: str, sender: Any = None, context: Any = None) -> list[Subscriber]:
        """Every active subscriber (the tests use one pattern)."""
        return [s for s in self.subscribers.values() if s.active]

    def get(self, uuid: str) -> Subscriber | None:
        """A subscriber by uuid."""
        return self.subscribers.get(str(uuid))

    def replace(self, subscriber: Subscriber) -> None:
        """Store a changed subscriber (as an admin edit would)."""
        self.subscribers[str(subscriber.uuid)] = subscriber


def setup(
    make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
) -> tuple[Thorn, StoredSource, Subscriber, WebhookReceiver, Switch]:
    """An app with one stored subscriber at a receiver that fails until switched."""
    switch = Switch()
    rx = make_receiver(switch)
    subscriber = Subscriber(url=rx.url("/hook"), event="order.*", hmac_secret=SECRET)
    source = StoredSource(subscriber)
    app = make_app()
    app.add_subscriber_source(source)
    return app, source, subscriber, rx, switch


class TestRedeliver:
    """redeliver(app, delivery_id) sends one failed delivery again."""

    def test_same_id_next_attempt_fresh_signature(
        self, make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """Once the receiver recovers: same Hook-Delivery and body, attempt 2, fresh timestamp."""
        app, _, _, rx, switch = setup(make_app, make_receiver)
        (failed,) = app.event("order.paid").send({"id": 7}, headers={"X-Tenant": "t1"}).deliveries
        assert not failed.ok
        time.sleep(1.05)  # webhook-timestamp has a one-second resolution
        switch.failing = False
        delivery = redeliver(app, failed.id)
        assert delivery.ok
        assert delivery.id == failed.id
        assert delivery.attempts == 2
        first, second = rx.wait_for(2)
        assert second.delivery_id == first.delivery_id == failed.id
        assert second.body == first.body
        assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
        assert second.headers["x-tenant"] == "t1"
        verified = verify_request(second.headers, second.body, SECRET)
        assert verified.delivery_id == failed.id
        assert verified.payload == {"id": 7}
        assert [(r.attempt, r.ok) for r in app.delivery_log.attempts(failed.id)] == [
            (1, False),
            (2, True),
        ]
        assert app.delivery_log.failed(str(failed.subscriber.uuid)) == []

    def test_unknown_delivery(self, app: Thorn) -> None:
        """A delivery id the log does not hold is a RedeliveryError (a LookupError)."""
        with pytest.raises(RedeliveryError, match="not in the delivery log"):
            redeliver(app, "no-such-delivery")
        assert issubclass(RedeliveryError, LookupError)

    def test_deactivated_subscriber(
        self, make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """A deactivated subscription is not sent to; re-enable it first."""
        app, source, subscriber, rx, _ = setup(make_app, make_receiver)
        (failed,) = app.event("order.paid").send({}).deliveries
        source.replace(attrs.evolve(subscriber, active=False))
        with pytest.raises(RedeliveryError, match="deactivated"):
            redeliver(app, failed.id)
        assert len(rx.received) == 1

    def test_deleted_subscriber(
        self, make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """A subscription that no longer exists cannot be redelivered to."""
        app, source, subscriber, _, _ = setup(make_app, make_receiver)
        (failed,) = app.event("order.paid").send({}).deliveries
        del source.subscribers[str(subscriber.uuid)]
        with pytest.raises(RedeliveryError, match="no longer exists"):
            redeliver(app, failed.id)

    def test_content_type_changed(
        self, make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """A subscription that now wants another content type refuses the logged body."""
        app, source, subscriber, rx, _ = setup(make_app, make_receiver)
        (failed,) = app.event("order.paid").send({}).deliveries
        source.replace(attrs.evolve(subscriber, content_type="application/x-www-form-urlencoded"))
        with pytest.raises(RedeliveryError, match="was sent as application/json"):
            redeliver(app, failed.id)
        assert len(rx.received) == 1

    def test_static_subscriber_deactivated_by_failures(
        self, make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """A static subscriber switched off for failing is refused until reactivated."""
        switch = Switch()
        rx = make_receiver(switch)
        app = make_app(
            {
                "THORN_SUBSCRIBERS": {"a.*": {"url": rx.url(), "hmac_secret": SECRET}},
                "THORN_FAILURE_LIMIT": 1,
                "THORN_FAILURE_WINDOW": 0,
            }
        )
        (failed,) = app.event("a.b").send({}).deliveries
        switch.failing = False
        with pytest.raises(RedeliveryError, match="deactivated"):
            redeliver(app, failed.id)
        assert app.reactivate_subscriber(failed.subscriber)
        assert redeliver(app, failed.id).ok


class TestRedeliverFailed:
    """redeliver_failed sends again every failed delivery of a subscriber, with progress."""

    def test_since_and_progress(
        self, make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """Only deliveries failed since the time are sent, oldest first, reporting progress."""
        app, _, subscriber, rx, switch = setup(make_app, make_receiver)
        old = app.event("order.paid").send({"n": 0}).deliveries[0]
        time.sleep(0.01)
        since = utcnow()
        newer = [app.event("order.paid").send({"n": n}).deliveries[0] for n in (1, 2, 3)]
        switch.failing = False
        calls: list[tuple[int, int, str]] = []
        done = redeliver_failed(
            app,
            str(subscriber.uuid),
            since,
            progress=lambda n, total, d: calls.append((n, total, d.id)),
        )
        assert [d.id for d in done] == [d.id for d in newer]
        assert calls == [(n + 1, 3, d.id) for n, d in enumerate(newer)]
        assert all(d.ok for d in done)
        assert [r.json()["n"] for r in rx.received[4:]] == [1, 2, 3]
        assert [r.delivery_id for r in app.delivery_log.failed(str(subscriber.uuid))] == [old.id]
        assert redeliver_failed(app, str(subscriber.uuid))[0].id == old.id

    def test_nothing_failed(
        self, make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """With nothing failed, nothing is sent and progress is not called."""
        app, _, subscriber, rx, _ = setup(make_app, make_receiver)
        calls: list[Any] = []
        assert redeliver_failed(app, str(subscriber.uuid), progress=calls.append) == []
        assert calls == []
        assert rx.received == []

    def test_deactivated_subscriber_sends_nothing(
        self, make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """A deactivated subscription raises before anything is sent."""
        app, source, subscriber, rx, _ = setup(make_app, make_receiver)
        app.event("order.paid").send({})
        source.replace(attrs.evolve(subscriber, active=False))
        with pytest.raises(RedeliveryError, match="is deactivated"):
            redeliver_failed(app, str(subscriber.uuid))
        with pytest.raises(RedeliveryError, match="no longer exists"):
            redeliver_failed(app, "22222222-2222-2222-2222-222222222222")
        assert len(rx.received) == 1

    def test_since_in_the_future(
        self, make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """A since after every failure selects nothing."""
        app, _, subscriber, _, _ = setup(make_app, make_receiver)
        app.event("order.paid").send({})
        later = utcnow() + datetime.timedelta(hours=1)
        assert redeliver_failed(app, str(subscriber.uuid), later) == []


class TestRedeliveryLimit:
    """A replay can be bounded, oldest first, so an API request is never held by it."""

    def test_limit_sends_the_oldest_first(self, make_app, make_receiver):
        """With limit=2, the two oldest failed deliveries go out; the third waits."""
        from thorn_core.redelivery import redeliver_failed

        down = {"on": True}
        receiver = make_receiver(lambda _r: (503, b"down") if down["on"] else (200, b"ok"))
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})
        sent = [Event("user.created", app=app).send({"n": n}).deliveries[0] for n in range(3)]
        down["on"] = False
        (subscriber,) = app.static_subscribers.matching("user.created")
        again = redeliver_failed(app, str(subscriber.uuid), limit=2)
        assert [d.id for d in again] == [d.id for d in sent[:2]]
        assert len(app.delivery_log.failed(str(subscriber.uuid))) == 1
