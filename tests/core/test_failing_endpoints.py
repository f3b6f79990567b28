"""Failing endpoints: deactivated after a streak of failures spanning a window, re-enabled."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from thorn_core import Subscriber, Thorn, signals
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver

SECRET = "s3cret-s3cret"


class Switch:
    """A receiver's answer the test flips: 500 while ``failing``, else 200."""

    def __init__(self) -> None:
        self.failing = True

    def __call__(self, _request: ReceivedWebhook) -> Reply:
        return (500, b"down") if self.failing else (200, b"ok")


@pytest.fixture
def deactivations() -> Iterator[list[tuple[Any, Subscriber, str]]]:
    """Record subscriber_deactivated signals as (sender, subscriber, reason)."""
    seen: list[tuple[Any, Subscriber, str]] = []

    def record(sender: Any, *, subscriber: Subscriber, reason: str, delivery: Any) -> None:
        seen.append((sender, subscriber, reason))

    signals.subscriber_deactivated.connect(record, weak=False)
    yield seen
    signals.subscriber_deactivated.disconnect(record)


def failing_app(make_app: Callable[..., Thorn], url: str, *, limit: int, window: float) -> Thorn:
    """An app with one static subscriber at ``url`` and the given failure settings."""
    return make_app(
        {
            "THORN_SUBSCRIBERS": {"a.*": {"url": url, "hmac_secret": SECRET}},
            "THORN_FAILURE_LIMIT": limit,
            "THORN_FAILURE_WINDOW": window,
        }
    )


class TestDeactivation:
    """A subscriber is switched off after THORN_FAILURE_LIMIT failures over THORN_FAILURE_WINDOW."""

    def test_deactivated_after_limit_when_window_is_zero(
        self,
        make_app: Callable[..., Thorn],
        make_receiver: Callable[..., WebhookReceiver],
        deactivations: list[tuple[Any, Subscriber, str]],
    ) -> None:
        """With no window, the third consecutive 500 deactivates; nothing is sent after it."""
        switch = Switch()
        rx = make_receiver(switch)
        app = failing_app(make_app, rx.url(), limit=3, window=0)
        for n in range(2):
            assert len(app.event("a.b").send({"n": n}).deliveries) == 1
        assert deactivations == []
        app.event("a.b").send({"n": 2})
        assert len(deactivations) == 1
        sender, subscriber, reason = deactivations[0]
        assert sender is app
        assert subscriber.url == rx.url()
        assert "3 consecutive failed deliveries" in reason
        assert app.event("a.b").send({"n": 3}).deliveries == []
        assert len(rx.received) == 3

    def test_window_must_be_spanned(
        self,
        make_app: Callable[..., Thorn],
        make_receiver: Callable[..., WebhookReceiver],
        deactivations: list[tuple[Any, Subscriber, str]],
    ) -> None:
        """Many quick failures inside the window do not deactivate; once it is spanned, one does."""
        rx = make_receiver(Switch())
        app = failing_app(make_app, rx.url(), limit=2, window=0.3)
        for n in range(5):
            app.event("a.b").send({"n": n})
        assert deactivations == []
        time.sleep(0.35)
        app.event("a.b").send({"n": 5})
        assert len(deactivations) == 1
        assert app.event("a.b").send({}).deliveries == []
        assert len(rx.received) == 6

    def test_success_resets_the_streak(
        self,
        make_app: Callable[..., Thorn],
        make_receiver: Callable[..., WebhookReceiver],
        deactivations: list[tuple[Any, Subscriber, str]],
    ) -> None:
        """Two failures, a success, two failures: never three in a row, so never deactivated."""
        switch = Switch()
        rx = make_receiver(switch)
        app = failing_app(make_app, rx.url(), limit=3, window=0)
        for failing in (True, True, False, True, True):
            switch.failing = failing
            app.event("a.b").send({})
        assert deactivations == []
        assert len(rx.received) == 5

    def test_limit_zero_never_deactivates(
        self,
        make_app: Callable[..., Thorn],
        make_receiver: Callable[..., WebhookReceiver],
        deactivations: list[tuple[Any, Subscriber, str]],
    ) -> None:
        """THORN_FAILURE_LIMIT = 0 turns the feature off."""
        rx = make_receiver(Switch())
        app = failing_app(make_app, rx.url(), limit=0, window=0)
        for _ in range(5):
            app.event("a.b").send({})
        assert deactivations == []
        assert len(rx.received) == 5

    def test_signal_fires_once(
        self,
        make_app: Callable[..., Thorn],
        make_receiver: Callable[..., WebhookReceiver],
        deactivations: list[tuple[Any, Subscriber, str]],
    ) -> None:
        """The signal fires once per deactivation, not again for later failures in flight."""
        rx = make_receiver(Switch())
        app = failing_app(make_app, rx.url(), limit=1, window=0)
        subscriber = app.static_subscribers.get(next(iter(app.subscribers_for("a.b"))).uuid)
        assert subscriber is not None
        app.event("a.b").send({})
        # A delivery already planned before the switch-off fails too: no second signal.
        app.event("a.b").send({}, subscribers=[subscriber])
        assert len(deactivations) == 1


class TestReactivation:
    """reactivate_subscriber turns a subscription back on with a clean streak."""

    def test_reactivated_subscriber_receives_again(
        self,
        make_app: Callable[..., Thorn],
        make_receiver: Callable[..., WebhookReceiver],
        deactivations: list[tuple[Any, Subscriber, str]],
    ) -> None:
        """After reactivation the subscriber receives again, and needs a full streak to drop."""
        switch = Switch()
        rx = make_receiver(switch)
        app = failing_app(make_app, rx.url(), limit=2, window=0)
        app.event("a.b").send({})
        app.event("a.b").send({})
        (_, subscriber, _) = deactivations[0]
        found = app.find_subscriber(str(subscriber.uuid))
        assert found is not None
        assert not found.active
        assert app.reactivate_subscriber(subscriber)
        found = app.find_subscriber(str(subscriber.uuid))
        assert found is not None
        assert found.active
        switch.failing = False
        result = app.event("a.b").send({"again": True})
        assert result.ok
        assert len(result.deliveries) == 1
        assert rx.received[-1].json() == {"again": True}
        switch.failing = True
        app.event("a.b").send({})
        assert len(deactivations) == 1  # one failure after reactivation is not a streak of 2

    def test_unknown_subscriber_is_not_reactivated(self, make_app: Callable[..., Thorn]) -> None:
        """reactivate_subscriber returns False when no source holds the subscriber."""
        app = make_app()
        assert not app.reactivate_subscriber(Subscriber(url="http://127.0.0.1/x"))
