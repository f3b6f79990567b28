"""Endpoint health: the breaker, the token bucket and the in-flight cap, in memory and in Redis;
the default dispatcher's use of them; the settings and subscriber fields behind them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from thorn_core import Event, ImproperlyConfigured, Subscriber, Thorn, signals
from thorn_core.exceptions import InvalidSubscriber
from thorn_core.health import (
    DEFERRED_CIRCUIT_OPEN,
    DEFERRED_RATE_LIMITED,
    HealthStore,
    MemoryHealthStore,
    endpoint_key,
    is_deferred,
)
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver

from ._health_support import (
    REDIS_URL,
    drop_prefix,
    redis_store,
    require_redis,
    require_redis_package,
    settings,
    unique_prefix,
)

KEY = "http://receiver.example:80"
T0 = 1_000_000.0


def _breaker_settings() -> Any:
    return settings(
        circuit_window=60,
        circuit_min_requests=4,
        circuit_failure_rate=0.5,
        circuit_cooloff=10,
        circuit_cooloff_max=25,
        slow_threshold=2,
    )


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[HealthStore]:
    """The same store behaviour, in this process's memory and in a real Redis."""
    config = _breaker_settings()
    if request.param == "memory":
        yield MemoryHealthStore(config)
        return
    require_redis()
    prefix = unique_prefix()
    found = redis_store(config, prefix)
    try:
        yield found
    finally:
        found.close()
        drop_prefix(prefix)


def _attempt(store: HealthStore, ok: bool, now: float, key: str = KEY) -> Any:
    admission = store.admit(key, rate_limit=None, max_in_flight=None, now=now)
    assert admission.allowed, admission
    store.release(key)
    return store.record(key, ok=ok, duration=0.05, now=now)


def _admit(store: HealthStore, now: float, key: str = KEY, **limits: Any) -> Any:
    limits.setdefault("rate_limit", None)
    limits.setdefault("max_in_flight", None)
    return store.admit(key, now=now, **limits)


class TestBreaker:
    """closed -> open -> half_open -> closed, or back to open with a longer cool-off."""

    def test_opens_when_the_failure_rate_is_reached_with_enough_requests(
        self, store: HealthStore
    ) -> None:
        """Three failures of four requests (75 % >= 50 %) open it at the fourth, not before."""
        _attempt(store, True, T0)
        _attempt(store, False, T0 + 1)
        assert _attempt(store, False, T0 + 2).state == "closed"  # 3 requests < 4
        status = _attempt(store, False, T0 + 3)

        assert (status.state, status.transition) == ("open", "opened")
        assert (status.requests, status.failures) == (4, 3)
        assert status.failure_rate == pytest.approx(0.75)
        assert status.next_probe_at == pytest.approx(T0 + 3 + 10)

    def test_stays_closed_below_the_rate(self, store: HealthStore) -> None:
        """One failure in five requests (20 %) leaves it closed."""
        for i, ok in enumerate([True, True, False, True, True]):
            status = _attempt(store, ok, T0 + i)
        assert status.state == "closed"
        assert status.failure_rate == pytest.approx(0.2)

    def test_old_failures_leave_the_window(self, store: HealthStore) -> None:
        """Failures older than the window no longer count towards opening it."""
        for i in range(3):
            _attempt(store, False, T0 + i)
        status = _attempt(store, False, T0 + 61 + 6)  # the first three are out of the window
        assert status.state == "closed"
        assert status.requests == 1

    def test_open_refuses_until_the_cooloff_ends(self, store: HealthStore) -> None:
        """While open, admit says circuit_open and when the probe may go."""
        for _i in range(4):
            _attempt(store, False, T0)
        admission = _admit(store, T0 + 5)
        assert (admission.allowed, admission.reason) == (False, "circuit_open")
        assert admission.retry_at == pytest.approx(T0 + 10)

    def test_half_open_admits_a_single_probe(self, store: HealthStore) -> None:
        """After the cool-off one delivery goes through as the probe; the next waits for it."""
        for _ in range(4):
            _attempt(store, False, T0)
        probe = _admit(store, T0 + 10)
        second = _admit(store, T0 + 10.5)

        assert (probe.allowed, probe.probe) == (True, True)
        assert (second.allowed, second.reason) == (False, "circuit_open")
        assert store.status(KEY).state == "half_open"

    def test_successful_probe_closes(self, store: HealthStore) -> None:
        """The probe's success closes the circuit and starts the window afresh."""
        for _ in range(4):
            _attempt(store, False, T0)
        assert _admit(store, T0 + 10).probe
        store.release(KEY)
        status = store.record(KEY, ok=True, duration=0.1, now=T0 + 10.2)

        assert (status.state, status.transition) == ("closed", "closed")
        assert (status.requests, status.failures, status.next_probe_at) == (0, 0, None)
        assert _admit(store, T0 + 10.3).allowed

    def test_failed_probe_reopens_with_doubled_cooloff_up_to_the_max(
        self, store: HealthStore
    ) -> None:
        """Each failed probe doubles the cool-off (10, 20, then 25 = the max), no new signal."""
        for _ in range(4):
            _attempt(store, False, T0)
        now = T0 + 10
        waits = []
        for _ in range(3):
            assert _admit(store, now).probe
            store.release(KEY)
            status = store.record(KEY, ok=False, duration=0.1, now=now)
            assert (status.state, status.transition) == ("open", None)
            assert status.next_probe_at is not None
            waits.append(round(status.next_probe_at - now, 3))
            now = status.next_probe_at
        assert waits == [20, 25, 25]

    def test_client_errors_do_not_count_for_the_breaker(
        self, make_app: Callable[..., Thorn]
    ) -> None:
        """breaker_failure: a 4xx answer shows the receiver up; 5xx and timeouts count."""
        from thorn_core.delivery import Delivery
        from thorn_core.health import breaker_failure

        subscriber = Subscriber(url="http://127.0.0.1:9/")
        common = {"id": "d", "event": "e", "subscriber": subscriber, "ok": False}
        assert not breaker_failure(Delivery(status_code=404, retryable=False, **common))
        assert breaker_failure(Delivery(status_code=503, retryable=True, **common))
        assert breaker_failure(Delivery(timed_out=True, retryable=True, **common))


class TestTokenBucket:
    """rate_limit: one token, refilled at the rate; an early delivery learns when to come back."""

    def test_first_is_allowed_then_spaced_by_the_rate(self, store: HealthStore) -> None:
        """At 2/s, deliveries go 0.5 s apart; one asked early is told the exact time."""
        assert _admit(store, T0, rate_limit=2.0).allowed
        early = _admit(store, T0 + 0.1, rate_limit=2.0)
        assert (early.allowed, early.reason) == (False, "rate_limited")
        assert early.retry_at == pytest.approx(T0 + 0.5, abs=1e-3)
        assert _admit(store, T0 + 0.5, rate_limit=2.0).allowed
        assert not _admit(store, T0 + 0.9, rate_limit=2.0).allowed
        assert _admit(store, T0 + 1.0, rate_limit=2.0).allowed

    def test_burst_is_one_and_idle_time_does_not_accumulate(self, store: HealthStore) -> None:
        """After a long idle time only one delivery goes at once: the bucket holds one token."""
        assert _admit(store, T0, rate_limit=10.0).allowed
        assert _admit(store, T0 + 100, rate_limit=10.0).allowed
        assert not _admit(store, T0 + 100, rate_limit=10.0).allowed

    def test_granted_count_matches_the_rate(self, store: HealthStore) -> None:
        """Asking every millisecond for 2 s at 50/s grants 101 (one per 20 ms, both ends)."""
        granted = sum(_admit(store, T0 + i / 1000, rate_limit=50.0).allowed for i in range(0, 2001))
        assert granted == 101

    def test_refused_admission_takes_no_slot(self, store: HealthStore) -> None:
        """A delivery refused for its rate does not hold an in-flight slot."""
        assert _admit(store, T0, rate_limit=1.0, max_in_flight=2).allowed
        assert not _admit(store, T0 + 0.1, rate_limit=1.0, max_in_flight=2).allowed
        assert _admit(store, T0 + 1.0, rate_limit=1.0, max_in_flight=2).allowed


class TestInFlightCap:
    """max_in_flight: at most that many admitted and not yet released."""

    def test_cap_and_release(self, store: HealthStore) -> None:
        """Two slots: the third waits until one is released."""
        assert _admit(store, T0, max_in_flight=2).allowed
        assert _admit(store, T0, max_in_flight=2).allowed
        refused = _admit(store, T0, max_in_flight=2)
        assert (refused.allowed, refused.reason) == (False, "max_in_flight")
        store.release(KEY)
        assert _admit(store, T0, max_in_flight=2).allowed

    def test_a_slot_never_released_expires(self, store: HealthStore) -> None:
        """A process that died mid-delivery does not hold its slot forever (the lease ends)."""
        assert _admit(store, T0, max_in_flight=1).allowed
        assert not _admit(store, T0 + 1, max_in_flight=1).allowed
        assert _admit(store, T0 + 61, max_in_flight=1).allowed


class TestSlowAndStreak:
    """Slow marks, failure streaks, reset and statuses."""

    def test_timeout_or_slow_answer_marks_slow(self, store: HealthStore) -> None:
        """A timed-out or over-threshold attempt marks the endpoint; a fast success clears it."""
        now = time.time()
        store.record(KEY, ok=True, duration=3.0, now=now)  # over the 2 s threshold
        assert store.is_slow(KEY)
        store.record(KEY, ok=True, duration=0.1, now=now)
        assert not store.is_slow(KEY)
        store.record(KEY, ok=False, duration=0.1, timed_out=True, now=now)
        assert store.is_slow(KEY)
        assert store.status(KEY).slow_until == pytest.approx(now + 10)

    def test_endpoint_failure_streak(self, store: HealthStore) -> None:
        """EndpointStatus counts consecutive failures since the last success."""
        _attempt(store, False, T0)
        status = _attempt(store, False, T0 + 1)
        assert (status.failure_streak, status.streak_since) == (2, T0)
        assert _attempt(store, True, T0 + 2).failure_streak == 0

    def test_subscriber_streak(self, store: HealthStore) -> None:
        """record_streak counts a subscriber's failures; a success or a reset ends the streak."""
        assert store.record_streak("sub", ok=False, now=T0) == 1
        assert store.record_streak("sub", ok=False, now=T0 + 5) == 2
        assert store.streak_since("sub") == pytest.approx(T0)
        assert store.record_streak("sub", ok=True, now=T0 + 6) == 0
        assert store.streak_since("sub") is None
        store.record_streak("sub", ok=False, now=T0 + 7)
        store.reset_streak("sub")
        assert store.record_streak("sub", ok=False, now=T0 + 8) == 1

    def test_reset_and_statuses(self, store: HealthStore) -> None:
        """reset closes the circuit and forgets counts; statuses answers for every key."""
        for _ in range(4):
            _attempt(store, False, T0)
        found = store.statuses([KEY, "http://other:80"])
        assert found[KEY].state == "open"
        assert found["http://other:80"].state == "closed"
        store.reset(KEY)
        assert store.status(KEY).state == "closed"
        assert _admit(store, T0).allowed


class TestEndpointKey:
    """Which deliveries share health."""

    def test_origin_with_default_port_and_lower_case_host(self) -> None:
        """Scheme, host in lower case and the port, written out; path and user info dropped."""
        assert endpoint_key(Subscriber(url="https://User:pw@Hooks.Example.COM/a?b=1")) == (
            "https://hooks.example.com:443"
        )
        assert endpoint_key(Subscriber(url="http://[::1]:8080/x")) == "http://[::1]:8080"

    def test_override(self) -> None:
        """A subscriber's endpoint names the health it shares, whatever its URL."""
        subscriber = Subscriber(url="https://a.example.com/", endpoint="customer-42")
        assert endpoint_key(subscriber) == "customer-42"


class TestConfiguration:
    """Bad limits and thresholds are refused with a clear message."""

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("THORN_CIRCUIT_WINDOW", 0),
            ("THORN_CIRCUIT_MIN_REQUESTS", 0),
            ("THORN_CIRCUIT_FAILURE_RATE", 0),
            ("THORN_CIRCUIT_FAILURE_RATE", 1.5),
            ("THORN_CIRCUIT_COOLOFF", -1),
            ("THORN_SLOW_THRESHOLD", 0),
            ("THORN_RATE_LIMIT", 0),
            ("THORN_MAX_IN_FLIGHT", 0),
            ("THORN_MAX_IN_FLIGHT", 1.5),
            ("THORN_HEALTH_URL", 6379),
            ("THORN_HEALTH_URL", "http://127.0.0.1:6379"),
        ],
    )
    def test_bad_setting(self, name: str, value: object) -> None:
        """Each is an ImproperlyConfigured naming the setting."""
        with pytest.raises(ImproperlyConfigured, match=name):
            Thorn({name: value}, set_as_current=False)

    def test_cooloff_max_below_cooloff(self) -> None:
        """The cool-off cannot grow to a maximum below where it starts."""
        with pytest.raises(ImproperlyConfigured, match="at least THORN_CIRCUIT_COOLOFF"):
            Thorn(
                {"THORN_CIRCUIT_COOLOFF": 30, "THORN_CIRCUIT_COOLOFF_MAX": 10},
                set_as_current=False,
            )

    @pytest.mark.parametrize(
        ("field", "value"),
        [("rate_limit", 0), ("rate_limit", "5"), ("max_in_flight", 0), ("endpoint", "a b")],
    )
    def test_bad_subscriber_field(self, field: str, value: object) -> None:
        """A static subscriber dict with a bad limit is refused, naming the field."""
        with pytest.raises(InvalidSubscriber, match=field):
            Subscriber.from_dict({"url": "https://a.example.com/", field: value})

    def test_subscriber_dict_round_trip(self) -> None:
        """The limits survive from_dict/as_dict."""
        subscriber = Subscriber.from_dict(
            {"url": "https://a.example.com/", "rate_limit": 2.5, "max_in_flight": 3}
        )
        assert Subscriber.from_dict(subscriber.as_dict()) == subscriber
        assert (subscriber.rate_limit, subscriber.max_in_flight) == (2.5, 3)

    def test_store_choice(self, make_app: Callable[..., Thorn]) -> None:
        """Memory by default; Redis when THORN_HEALTH_URL names it."""
        require_redis_package()
        from thorn_core.health_redis import RedisHealthStore

        assert isinstance(make_app().health, MemoryHealthStore)
        assert isinstance(make_app({"THORN_HEALTH_URL": REDIS_URL}).health, RedisHealthStore)


class _Flaky:
    """A receiver answering with ``status`` (changeable) and counting requests."""

    def __init__(self, status: int = 503) -> None:
        self.status = status
        self.times: list[float] = []

    def __call__(self, _request: ReceivedWebhook) -> Reply:
        self.times.append(time.monotonic())
        return self.status, b"status"


@pytest.fixture
def flaky() -> Iterator[tuple[_Flaky, WebhookReceiver]]:
    """A real loopback receiver whose answer the test sets."""
    behaviour = _Flaky()
    with WebhookReceiver(respond=behaviour) as receiver:
        yield behaviour, receiver


class TestDefaultDispatcher:
    """The in-process dispatcher asks the store before each attempt."""

    def test_open_circuit_fails_fast_without_an_attempt(
        self, make_app: Callable[..., Thorn], flaky: tuple[_Flaky, WebhookReceiver]
    ) -> None:
        """Three 503s open the circuit; the next send makes no request and says deferred."""
        behaviour, receiver = flaky
        app = make_app(
            {
                "THORN_CIRCUIT_MIN_REQUESTS": 3,
                "THORN_CIRCUIT_COOLOFF": 30,
                "THORN_SUBSCRIBERS": {"order.paid": receiver.url("/hook")},
            }
        )
        opened: list[dict[str, Any]] = []
        event = Event("order.paid", app=app)
        with signals.circuit_opened.connected_to(lambda _, **kw: opened.append(kw), sender=app):
            for _ in range(3):
                assert event.send({"n": 1}).deliveries[0].status_code == 503
            result = event.send({"n": 2})

        delivery = result.deliveries[0]
        assert len(behaviour.times) == 3
        assert (delivery.ok, delivery.attempts, delivery.error) == (False, 0, DEFERRED_CIRCUIT_OPEN)
        assert is_deferred(delivery)
        assert delivery.retryable
        assert delivery.retry_after == pytest.approx(30, abs=1)
        assert [kw["key"] for kw in opened] == [f"http://127.0.0.1:{receiver.port}"]
        logged = app.delivery_log.latest(delivery.id)
        assert logged is not None
        assert logged.error == DEFERRED_CIRCUIT_OPEN

    def test_probe_after_cooloff_closes_the_circuit(
        self, make_app: Callable[..., Thorn], flaky: tuple[_Flaky, WebhookReceiver]
    ) -> None:
        """Once the receiver recovers, the first send after the cool-off probes and closes."""
        behaviour, receiver = flaky
        app = make_app(
            {
                "THORN_CIRCUIT_MIN_REQUESTS": 2,
                "THORN_CIRCUIT_COOLOFF": 0.3,
                "THORN_SUBSCRIBERS": {"order.paid": receiver.url("/hook")},
            }
        )
        closed: list[dict[str, Any]] = []
        event = Event("order.paid", app=app)
        with signals.circuit_closed.connected_to(lambda _, **kw: closed.append(kw), sender=app):
            event.send({})
            event.send({})
            assert event.send({}).deliveries[0].error == DEFERRED_CIRCUIT_OPEN
            behaviour.status = 200
            time.sleep(0.35)
            assert event.send({}).ok
        assert len(behaviour.times) == 3
        assert len(closed) == 1
        assert closed[0]["status"].state == "closed"

    def test_rate_limit_spaces_deliveries(
        self, make_app: Callable[..., Thorn], flaky: tuple[_Flaky, WebhookReceiver]
    ) -> None:
        """At 5/s, four sends in a row wait for their tokens (0.2 s each), none is deferred."""
        behaviour, receiver = flaky
        behaviour.status = 200
        app = make_app({"THORN_SUBSCRIBERS": {"a": {"url": receiver.url("/"), "rate_limit": 5}}})
        event = Event("a", app=app)
        started = time.monotonic()
        results = [event.send({}) for _ in range(4)]
        elapsed = time.monotonic() - started
        assert [r.ok for r in results] == [True] * 4
        assert len(behaviour.times) == 4
        assert elapsed >= 0.6 - 0.01

    def test_long_rate_wait_is_deferred(
        self, make_app: Callable[..., Thorn], flaky: tuple[_Flaky, WebhookReceiver]
    ) -> None:
        """At one delivery per 4 s (the site default), the second is deferred with its wait."""
        behaviour, receiver = flaky
        behaviour.status = 200
        app = make_app({"THORN_RATE_LIMIT": 0.25, "THORN_SUBSCRIBERS": {"a": receiver.url("/")}})
        event = Event("a", app=app)
        assert event.send({}).ok
        delivery = event.send({}).deliveries[0]
        assert (delivery.error, delivery.attempts) == (DEFERRED_RATE_LIMITED, 0)
        assert delivery.retry_after == pytest.approx(4, abs=0.2)
        assert len(behaviour.times) == 1


class TestSharedStreak:
    """The auto-disable streak lives in the health store, shared by every process."""

    def test_streak_counts_attempts_of_two_apps(
        self, make_app: Callable[..., Thorn], flaky: tuple[_Flaky, WebhookReceiver]
    ) -> None:
        """Two apps (as two workers) on one Redis: 2 + 2 failures reach a limit of 4."""
        require_redis()
        behaviour, receiver = flaky
        behaviour.status = 400
        prefix = unique_prefix()
        config = {
            "THORN_HEALTH_URL": REDIS_URL,
            "THORN_FAILURE_LIMIT": 4,
            "THORN_FAILURE_WINDOW": 0,
            "THORN_SUBSCRIBERS": {"a": receiver.url("/")},
        }
        apps = [make_app(config), make_app(config)]
        for app in apps:
            app.health.prefix = prefix  # type: ignore[attr-defined]
        deactivated: list[Any] = []
        signal = signals.subscriber_deactivated
        try:
            with signal.connected_to(lambda sender, **_: deactivated.append(sender)):
                for app in (apps[0], apps[1], apps[0]):
                    Event("a", app=app).send({})
                assert not deactivated  # 3 < 4, though neither app saw more than 2 itself
                Event("a", app=apps[1]).send({})
        finally:
            drop_prefix(prefix)
        assert deactivated == [apps[1]]

    def test_deferrals_do_not_count(
        self, make_app: Callable[..., Thorn], flaky: tuple[_Flaky, WebhookReceiver]
    ) -> None:
        """A deferred delivery is no failure of the receiver: the streak ignores it."""
        _behaviour, receiver = flaky
        app = make_app(
            {
                "THORN_CIRCUIT_MIN_REQUESTS": 1,
                "THORN_CIRCUIT_COOLOFF": 60,
                "THORN_FAILURE_LIMIT": 3,
                "THORN_FAILURE_WINDOW": 0,
                "THORN_SUBSCRIBERS": {"a": receiver.url("/")},
            }
        )
        event = Event("a", app=app)
        results = [event.send({}) for _ in range(5)]
        assert [r.deliveries[0].attempts for r in results] == [1, 0, 0, 0, 0]
        subscriber = results[0].deliveries[0].subscriber
        assert app.health.record_streak(str(subscriber.uuid), ok=False) == 2


class TestRedisUnreachable:
    """A delivery goes out when the health store's Redis is down."""

    def test_delivery_goes_out_with_one_warning(
        self,
        make_app: Callable[..., Thorn],
        flaky: tuple[_Flaky, WebhookReceiver],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Nothing listens at the health URL: every send is delivered, one warning is logged."""
        require_redis_package()
        behaviour, receiver = flaky
        behaviour.status = 200
        app = make_app(
            {
                "THORN_HEALTH_URL": "redis://127.0.0.1:1/0",
                "THORN_SUBSCRIBERS": {"a": {"url": receiver.url("/"), "rate_limit": 1000}},
            }
        )
        event = Event("a", app=app)
        with caplog.at_level(logging.WARNING, logger="thorn_core.health_redis"):
            results = [event.send({"n": n}) for n in range(3)]
        assert [r.ok for r in results] == [True] * 3
        assert len(behaviour.times) == 3
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
