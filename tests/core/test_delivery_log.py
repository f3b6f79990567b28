"""The delivery log: the in-memory log, attempt records, and logging through real sends."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest

from thorn_core import Thorn
from thorn_core.delivery import Delivery, DeliveryRequest
from thorn_core.exceptions import ImproperlyConfigured
from thorn_core.log import (
    RESPONSE_EXCERPT_BYTES,
    AttemptRecord,
    DeliveryLog,
    FailureStreak,
    MemoryDeliveryLog,
    attempt_record,
)
from thorn_core.receiver import WebhookReceiver
from thorn_core.subscribers import Subscriber

T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
SUB = "11111111-1111-1111-1111-111111111111"


def rec(
    delivery_id: str,
    attempt: int = 1,
    *,
    ok: bool = False,
    minutes: int = 0,
    subscriber: str = SUB,
) -> AttemptRecord:
    """An attempt record made by hand, ``minutes`` after T0."""
    return AttemptRecord(
        delivery_id=delivery_id,
        event="order.paid",
        subscriber_uuid=subscriber,
        url="http://127.0.0.1/hook",
        attempt=attempt,
        ok=ok,
        retryable=not ok,
        status_code=200 if ok else 503,
        error=None if ok else "HTTP 503",
        duration=0.01,
        at=T0 + datetime.timedelta(minutes=minutes),
    )


class TestMemoryLog:
    """MemoryDeliveryLog keeps attempts per delivery and failure streaks per subscriber."""

    def test_is_a_delivery_log(self) -> None:
        """The in-memory log implements the DeliveryLog protocol."""
        assert isinstance(MemoryDeliveryLog(), DeliveryLog)

    def test_latest_and_attempts(self) -> None:
        """attempts() lists every attempt oldest first; latest() is the last one."""
        log = MemoryDeliveryLog()
        log.record(rec("d1", 1))
        log.record(rec("d1", 2, minutes=1))
        log.record(rec("d2", 1))
        assert [r.attempt for r in log.attempts("d1")] == [1, 2]
        latest = log.latest("d1")
        assert latest is not None
        assert latest.attempt == 2
        assert log.latest("unknown") is None
        assert log.attempts("unknown") == []

    def test_failed_lists_latest_unsuccessful_attempt_since(self) -> None:
        """failed() gives the latest attempt of each unsuccessful delivery, filtered by since."""
        log = MemoryDeliveryLog()
        log.record(rec("old", minutes=0))
        log.record(rec("healed", minutes=1))
        log.record(rec("healed", 2, ok=True, minutes=2))
        log.record(rec("new", minutes=3))
        log.record(rec("new", 2, minutes=4))
        log.record(rec("other", subscriber="22222222-2222-2222-2222-222222222222"))
        assert [(r.delivery_id, r.attempt) for r in log.failed(SUB)] == [("old", 1), ("new", 2)]
        since = T0 + datetime.timedelta(minutes=2)
        assert [r.delivery_id for r in log.failed(SUB, since)] == ["new"]

    def test_streak_counts_failures_and_success_resets(self) -> None:
        """Each failure extends the streak from its first failure; a success resets it."""
        log = MemoryDeliveryLog()
        assert log.record(rec("a", minutes=0)) == FailureStreak(1, T0)
        assert log.record(rec("b", minutes=5)) == FailureStreak(2, T0)
        assert log.record(rec("c", ok=True, minutes=6)) == FailureStreak()
        later = T0 + datetime.timedelta(minutes=7)
        assert log.record(rec("d", minutes=7)) == FailureStreak(1, later)
        assert log.streak(SUB) == FailureStreak(1, later)

    def test_reset_streak(self) -> None:
        """reset_streak forgets a subscriber's failures."""
        log = MemoryDeliveryLog()
        log.record(rec("a"))
        log.reset_streak(SUB)
        assert log.streak(SUB) == FailureStreak()
        assert log.record(rec("b", minutes=1)).count == 1

    def test_bounded_oldest_dropped(self) -> None:
        """Past max_deliveries, the least recently attempted delivery is dropped."""
        log = MemoryDeliveryLog(max_deliveries=2)
        log.record(rec("a"))
        log.record(rec("b"))
        log.record(rec("a", 2))
        log.record(rec("c"))
        assert log.latest("b") is None
        assert log.latest("a") is not None
        assert log.latest("c") is not None


class TestPruning:
    """prune(before) removes old attempts but keeps what redelivery needs."""

    def test_prune_keeps_latest_failed_attempt(self) -> None:
        """Old attempts go; the latest attempt of an unsuccessful delivery stays however old."""
        log = MemoryDeliveryLog()
        for attempt in (1, 2, 3):
            log.record(rec("failing", attempt, minutes=attempt))
        log.record(rec("done", 1, minutes=1))
        log.record(rec("done", 2, ok=True, minutes=2))
        log.record(rec("recent", 1, minutes=100))
        removed = log.prune(T0 + datetime.timedelta(minutes=50))
        assert removed == 4
        assert [r.attempt for r in log.attempts("failing")] == [3]
        assert log.attempts("done") == []
        assert [r.attempt for r in log.attempts("recent")] == [1]
        assert [r.delivery_id for r in log.failed(SUB)] == ["failing", "recent"]

    def test_prune_keeps_recent_attempts_of_any_delivery(self) -> None:
        """Attempts at or after ``before`` stay, successful or not."""
        log = MemoryDeliveryLog()
        log.record(rec("a", 1, minutes=10))
        log.record(rec("a", 2, ok=True, minutes=11))
        assert log.prune(T0 + datetime.timedelta(minutes=10)) == 0
        assert len(log.attempts("a")) == 2


def sample_delivery(**overrides: Any) -> Delivery:
    """A failed delivery with a request carrying credentials and a long answer."""
    subscriber = Subscriber(url="http://127.0.0.1:9/hook", event="a.*", hmac_secret="s3cret")
    request = DeliveryRequest(
        id="d-1",
        event="a.b",
        subscriber=subscriber,
        body=b'{"n": 1}',
        headers={
            "Authorization": "Bearer token",
            "Cookie": "session=1",
            "Proxy-Authorization": "Basic x",
            "Hook-Delivery": "d-1",
            "X-Tenant": "t1",
        },
        timeout=3.0,
    )
    values: dict[str, Any] = {
        "id": "d-1",
        "event": "a.b",
        "subscriber": subscriber,
        "ok": False,
        "status_code": 503,
        "error": "HTTP 503",
        "attempts": 2,
        "duration": 0.25,
        "retryable": True,
        "response_body": b"x" * (RESPONSE_EXCERPT_BYTES + 100),
        "request": request,
    }
    values.update(overrides)
    return Delivery(**values)


class TestAttemptRecord:
    """attempt_record turns a Delivery into what the log keeps."""

    def test_credentials_dropped_body_kept(self) -> None:
        """Authorization, Proxy-Authorization and Cookie are dropped; body and the rest kept."""
        record = attempt_record(sample_delivery())
        assert set(record.request_headers) == {"Hook-Delivery", "X-Tenant"}
        assert record.body == b'{"n": 1}'
        assert "s3cret" not in repr(record)

    def test_fields(self) -> None:
        """Id, attempt, status, error, duration, capped excerpt and next retry are recorded."""
        record = attempt_record(sample_delivery(), next_retry_in=60)
        assert (record.delivery_id, record.attempt, record.status_code) == ("d-1", 2, 503)
        assert (record.ok, record.retryable, record.error) == (False, True, "HTTP 503")
        assert record.duration == 0.25
        assert len(record.response_excerpt) == RESPONSE_EXCERPT_BYTES
        assert record.next_retry_at is not None
        assert 59 <= (record.next_retry_at - record.at).total_seconds() <= 61

    def test_without_request(self) -> None:
        """A delivery refused before any request is logged with no headers and no body."""
        record = attempt_record(sample_delivery(request=None, attempts=0))
        assert (record.request_headers, record.body, record.next_retry_at) == ({}, b"", None)


class TestLoggingSends:
    """Real sends with the default dispatcher log every attempt."""

    def test_every_attempt_logged(
        self, make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """Each delivery to real receivers is logged with status, duration and excerpt."""
        good = make_receiver()
        bad = make_receiver(lambda _: (500, b"database is down"))
        app = make_app()
        result = app.event("order.paid").send(
            {"id": 1},
            subscribers=[good.url("/ok"), bad.url("/bad")],
            headers={"Authorization": "Bearer t"},
        )
        assert len(result.deliveries) == 2
        log = app.delivery_log
        by_status = {}
        for delivery in result.deliveries:
            (record,) = log.attempts(delivery.id)
            by_status[record.status_code] = record
            assert record.duration > 0
            assert delivery.request is not None
            assert record.body == delivery.request.body
            assert "Authorization" not in record.request_headers
            assert record.request_headers["Hook-Delivery"] == delivery.id
        assert by_status[200].ok
        assert by_status[200].response_excerpt == "ok"
        assert not by_status[500].ok
        assert by_status[500].response_excerpt == "database is down"
        assert by_status[500].error

    def test_received_request_matches_log(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """The logged body and delivery id are those the receiver got."""
        app = make_app()
        (delivery,) = app.event("a.b").send({"n": 2}, subscribers=[receiver.url()]).deliveries
        (got,) = receiver.wait_for(1)
        record = app.delivery_log.latest(delivery.id)
        assert record is not None
        assert (record.body, record.delivery_id) == (got.body, got.delivery_id)

    def test_refused_url_logged(self, make_app: Callable[..., Thorn]) -> None:
        """A delivery refused by the recipient validators is logged too, with no attempt."""
        app = make_app({"THORN_RECIPIENT_VALIDATORS": None})
        (delivery,) = app.event("a.b").send({}, subscribers=["http://127.0.0.1:9/"]).deliveries
        record = app.delivery_log.latest(delivery.id)
        assert record is not None
        assert not record.ok
        assert record.status_code is None

    def test_failing_log_does_not_stop_delivery(
        self,
        make_app: Callable[..., Thorn],
        receiver: WebhookReceiver,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A log whose record() raises is reported, and the delivery still succeeds."""
        app = make_app({"THORN_DELIVERY_LOG": BrokenLog()})
        result = app.event("a.b").send({}, subscribers=[receiver.url()])
        assert result.ok
        assert len(receiver.wait_for(1)) == 1
        assert "Logging delivery" in caplog.text


class BrokenLog(MemoryDeliveryLog):
    """A log whose disk is full."""

    def record(self, record: AttemptRecord) -> FailureStreak:
        raise OSError("disk full")


class CountingLog(MemoryDeliveryLog):
    """A log that counts what it records (named by THORN_DELIVERY_LOG as a path)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def record(self, record: AttemptRecord) -> FailureStreak:
        self.count += 1
        return super().record(record)


class TestSetting:
    """THORN_DELIVERY_LOG picks the log: None, an object, or a "module:Class" path."""

    def test_default_is_memory(self, make_app: Callable[..., Thorn]) -> None:
        """Without the setting, each app has its own in-memory log."""
        first, second = make_app(), make_app()
        assert isinstance(first.delivery_log, MemoryDeliveryLog)
        assert first.delivery_log is not second.delivery_log

    def test_object(self, make_app: Callable[..., Thorn], receiver: WebhookReceiver) -> None:
        """A log object is used as it is."""
        log = CountingLog()
        app = make_app({"THORN_DELIVERY_LOG": log})
        app.event("a.b").send({}, subscribers=[receiver.url()])
        assert app.delivery_log is log
        assert log.count == 1

    def test_path_is_instantiated(self, make_app: Callable[..., Thorn]) -> None:
        """A "module:Class" path names a class, instantiated with no arguments."""
        app = make_app({"THORN_DELIVERY_LOG": f"{__name__}:CountingLog"})
        assert type(app.delivery_log) is CountingLog

    @pytest.mark.parametrize(
        "value",
        [
            "no.such.module:Log",
            f"{__name__}:NoSuchName",
            f"{__name__}:AttemptRecord",  # a class that needs arguments
            "not a path",
            42,
            object(),
        ],
    )
    def test_bad_value_fails_at_start_up(
        self, make_app: Callable[..., Thorn], value: object
    ) -> None:
        """A path that cannot be imported, or an object that is no log, is ImproperlyConfigured."""
        with pytest.raises(ImproperlyConfigured, match="THORN_DELIVERY_LOG"):
            make_app({"THORN_DELIVERY_LOG": value})
