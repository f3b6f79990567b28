"""The database delivery log: real deliveries as rows, failure streaks, deactivation, pruning."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from thorn_core import signals
from thorn_core.log import AttemptRecord, FailureStreak, utcnow
from thorn_core.receiver import WebhookReceiver
from thorn_django import get_app
from thorn_django.log import DjangoDeliveryLog
from thorn_django.models import DeliveryAttempt, FailureReset, Subscriber

from ._support import Switch

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback")]

NOW = utcnow()


def send(event: str = "order.paid", data: Any = None) -> None:
    """Send an event through the project's app (delivered in this thread)."""
    get_app().event(event).send(data if data is not None else {"n": 1})


def attempt(delivery_id: str, subscriber: str, at: datetime.datetime, ok: bool) -> AttemptRecord:
    """A made-up attempt at ``at``."""
    return AttemptRecord(
        delivery_id=delivery_id,
        event="order.paid",
        subscriber_uuid=subscriber,
        url="https://example.com/hook",
        attempt=1,
        ok=ok,
        retryable=not ok,
        status_code=200 if ok else 503,
        error=None if ok else "HTTP 503",
        duration=0.01,
        at=at,
    )


class TestDefault:
    def test_installed_app_uses_the_database(self, settings: Any) -> None:
        """With ``thorn_django`` installed the log is the database's; ``None`` opts out."""
        assert isinstance(get_app().delivery_log, DjangoDeliveryLog)
        settings.THORN_DELIVERY_LOG = None
        assert not isinstance(get_app().delivery_log, DjangoDeliveryLog)
        settings.THORN_DELIVERY_LOG = "thorn_django.log:DjangoDeliveryLog"
        assert isinstance(get_app().delivery_log, DjangoDeliveryLog)


class TestRecording:
    def test_each_attempt_is_a_row(
        self, subscribe: Callable[..., Any], flaky: WebhookReceiver, switch: Switch
    ) -> None:
        """A failed and a successful delivery are stored with what was sent and answered."""
        row = subscribe("order.*", flaky.url("/hook"))
        send(data={"n": 1})
        switch.down = False
        send(data={"n": 2})
        failed, delivered = DeliveryAttempt.objects.order_by("at", "pk")
        assert (failed.ok, failed.status_code, failed.retryable) == (False, 503, True)
        assert failed.response_excerpt == "down for maintenance"
        assert (delivered.ok, delivered.status_code) == (True, 200)
        first, second = flaky.received
        assert failed.delivery_id == first.delivery_id
        assert bytes(failed.body) == first.body
        assert failed.subscriber_uuid == row.uuid
        assert failed.request_headers["Hook-Delivery"] == failed.delivery_id
        assert delivered.delivery_id == second.delivery_id
        for stored in (failed, delivered):
            assert row.hmac_secret not in str(stored.request_headers)
            assert row.hmac_secret.encode() not in bytes(stored.body)

    def test_latest_attempts_and_failed(self) -> None:
        """``latest``, ``attempts`` and ``failed`` read the rows back as core records."""
        log = DjangoDeliveryLog()
        sub = str(uuid.uuid4())
        t = NOW - datetime.timedelta(minutes=10)
        log.record(attempt("a", sub, t, ok=False))
        log.record(attempt("a", sub, t + datetime.timedelta(minutes=1), ok=True))
        log.record(attempt("b", sub, t + datetime.timedelta(minutes=2), ok=False))
        log.record(attempt("c", sub, t + datetime.timedelta(minutes=3), ok=False))
        latest = log.latest("a")
        assert latest is not None
        assert latest.ok
        assert latest.at == t + datetime.timedelta(minutes=1)
        assert [r.ok for r in log.attempts("a")] == [False, True]
        assert [r.delivery_id for r in log.failed(sub)] == ["b", "c"]
        since = t + datetime.timedelta(minutes=3)
        assert [r.delivery_id for r in log.failed(sub, since)] == ["c"]
        assert log.latest("nope") is None

    def test_no_foreign_key(self) -> None:
        """The log keeps subscriber uuids, not foreign keys: deleting a subscriber keeps its log."""
        assert not any(field.is_relation for field in DeliveryAttempt._meta.get_fields())
        assert Subscriber._meta.get_field("uuid").unique


class TestStreak:
    def test_counted_by_the_database(self) -> None:
        """Failures after the latest success and the latest reset count; ``since`` is the first."""
        log = DjangoDeliveryLog()
        sub = str(uuid.uuid4())
        t = NOW - datetime.timedelta(hours=1)
        minute = datetime.timedelta(minutes=1)
        assert log.record(attempt("a", sub, t, ok=False)) == FailureStreak(1, t)
        assert log.record(attempt("b", sub, t + minute, ok=False)) == FailureStreak(2, t)
        assert log.record(attempt("a", sub, t + 2 * minute, ok=True)) == FailureStreak()
        assert log.record(attempt("c", sub, t + 3 * minute, ok=False)) == FailureStreak(
            1, t + 3 * minute
        )
        other = str(uuid.uuid4())
        assert log.record(attempt("d", other, t + 4 * minute, ok=False)).count == 1
        log.reset_streak(sub)
        log.reset_streak(sub)
        assert FailureReset.objects.filter(subscriber_uuid=sub).count() == 1
        streak = log.record(attempt("e", sub, utcnow(), ok=False))
        assert streak.count == 1

    def test_deactivated_after_the_limit_and_the_window(
        self, settings: Any, subscribe: Callable[..., Any], flaky: WebhookReceiver
    ) -> None:
        """Three failures within the window keep it on; the next one past it switches it off."""
        settings.THORN_FAILURE_LIMIT = 3
        settings.THORN_FAILURE_WINDOW = 0.3
        row = subscribe("order.*", flaky.url("/hook"))
        seen: list[Any] = []

        def deactivated(sender: Any, **kwargs: Any) -> None:
            seen.append((kwargs["subscriber"].uuid, kwargs["reason"]))

        signals.subscriber_deactivated.connect(deactivated)
        try:
            for _ in range(3):
                send()
            row.refresh_from_db()
            assert row.active
            time.sleep(0.35)
            send()
            row.refresh_from_db()
            assert not row.active
            send()
        finally:
            signals.subscriber_deactivated.disconnect(deactivated)
        assert len(flaky.received) == 4
        assert len(seen) == 1
        assert seen[0][0] == row.uuid
        assert "4 consecutive failed deliveries" in seen[0][1]
        assert FailureReset.objects.filter(subscriber_uuid=row.uuid).exists()

    def test_success_resets_the_count(
        self,
        settings: Any,
        subscribe: Callable[..., Any],
        flaky: WebhookReceiver,
        switch: Switch,
    ) -> None:
        """A success between failures starts the count again: the subscriber stays on."""
        settings.THORN_FAILURE_LIMIT = 3
        settings.THORN_FAILURE_WINDOW = 0
        row = subscribe("order.*", flaky.url("/hook"))
        send()
        send()
        switch.down = False
        send()
        switch.down = True
        send()
        send()
        row.refresh_from_db()
        assert row.active
        send()
        row.refresh_from_db()
        assert not row.active


class TestPrune:
    def test_keeps_what_it_must(self) -> None:
        """Old attempts go, except the latest of unfinished deliveries and each latest success."""
        log = DjangoDeliveryLog()
        sub, quiet = str(uuid.uuid4()), str(uuid.uuid4())
        day = datetime.timedelta(days=1)
        old = NOW - 10 * day
        log.record(attempt("failing", sub, old, ok=False))  # removed: a later attempt exists
        log.record(attempt("failing", sub, old + day, ok=False))  # kept: latest, not succeeded
        log.record(attempt("done", sub, old, ok=False))  # removed
        log.record(attempt("done", sub, old + day, ok=True))  # removed: sub succeeded later
        log.record(attempt("fresh", sub, NOW - day, ok=True))  # kept: recent
        log.record(attempt("recent", sub, NOW - day, ok=False))  # kept: recent
        log.record(attempt("q", quiet, old, ok=True))  # kept: quiet's latest success
        removed = log.prune(NOW - 7 * day)
        assert removed == 3
        kept = sorted(DeliveryAttempt.objects.values_list("delivery_id", "ok"))
        assert kept == [
            ("failing", False),
            ("fresh", True),
            ("q", True),
            ("recent", False),
        ]
        assert [r.delivery_id for r in log.failed(sub)] == ["failing", "recent"]
        assert log.prune(NOW - 7 * day) == 0
        assert log.record(attempt("x", quiet, utcnow(), ok=False)).count == 1

    def test_many_rows_in_batches(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Pruning deletes in batches until nothing old is left."""
        import thorn_django.log

        monkeypatch.setattr(thorn_django.log, "_PRUNE_BATCH", 7)
        log = DjangoDeliveryLog()
        sub = str(uuid.uuid4())
        old = NOW - datetime.timedelta(days=30)
        for i in range(20):
            log.record(attempt(f"d{i}", sub, old + datetime.timedelta(seconds=i), ok=True))
        assert log.prune(NOW) == 19
        assert DeliveryAttempt.objects.count() == 1
