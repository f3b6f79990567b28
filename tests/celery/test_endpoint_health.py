"""Endpoint health across two real ``celery worker`` processes on Redis.

A blackholed endpoint among healthy ones, a receiver that answers 503 for a while, a
rate-limited endpoint and a failure streak: each counted from outside, at real loopback
receivers, with the health state the workers share in Redis (the broker's URL).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from thorn_core import Subscriber, Thorn
from thorn_core.fanout import delivery_id_for
from thorn_core.health import endpoint_key
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver
from thorn_core.results import SendResult

from ._celery_support import (
    BROKERS,
    IN_CI,
    LOOPBACK_VALIDATORS,
    WAIT,
    WorkerProcess,
    delete_queue,
    reachable,
    wait_until,
)

REDIS = BROKERS["redis"]
#: Seconds by which arrivals at a receiver may be closer together than their sends were.
JITTER = 0.05


@pytest.fixture
def redis_broker() -> str:
    """Redis, the broker and the health store of these tests; skipped (failed in CI) without."""
    if not reachable(REDIS):
        reason = f"Redis at {REDIS} is not reachable"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the endpoint health tests must run)")
        pytest.skip(reason)
    return REDIS


@pytest.fixture
def slow_queue(queue: str) -> str:
    """The test's THORN_CELERY_SLOW_QUEUE."""
    return f"{queue}-slow"


@pytest.fixture
def capp(redis_broker: str, queue: str, slow_queue: str) -> Iterator[Celery]:
    """A Celery app on Redis for publishing; both queues are deleted afterwards."""
    capp = Celery("thorn-health-tests", broker=redis_broker, set_as_current=False)
    capp.conf.update(broker_connection_retry_on_startup=True)
    yield capp
    delete_queue(capp, queue)
    delete_queue(capp, slow_queue)
    capp.close()


@pytest.fixture
def publisher(capp: Celery, queue: str) -> Iterator[Thorn]:
    """The publishing side's Thorn app (its ``health`` is the workers' store in Redis)."""
    app = Thorn(
        {
            "THORN_DISPATCHER": "celery",
            "THORN_CELERY_APP": capp,
            "THORN_CELERY_QUEUE": queue,
            "THORN_RECIPIENT_VALIDATORS": LOOPBACK_VALIDATORS,
        }
    )
    yield app
    app.close()


@pytest.fixture
def start_workers(
    redis_broker: str, queue: str, capp: Celery, tmp_path: Path
) -> Iterator[Callable[..., list[WorkerProcess]]]:
    """Start ``celery worker`` subprocesses with extra settings and wait until they answer."""
    started: list[WorkerProcess] = []

    def start(
        count: int,
        settings: Mapping[str, Any],
        *,
        queues: Sequence[str] = (),
        only: str | None = None,
        concurrency: int = 2,
    ) -> list[WorkerProcess]:
        workers = []
        for _ in range(count):
            pid_dir = tmp_path / f"pids-{len(started)}"
            pid_dir.mkdir()
            worker = WorkerProcess(
                redis_broker,
                only or queue,
                "threads",
                concurrency,
                pid_dir,
                settings=settings,
                queues=queues,
            )
            started.append(worker)
            workers.append(worker)
        names = {w.name for w in workers}

        def answering() -> bool:
            replies = capp.control.ping(timeout=0.3)
            return names <= {name.split("@")[0] for reply in replies for name in reply}

        wait_until(answering, what=f"{count} workers to answer a ping")
        return workers

    yield start
    for worker in started:
        worker.stop()


class Blackhole:
    """A loopback port that accepts connections and never answers; counts them."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = int(self.listener.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.listener.accept()
                self.accepted.append(connection)

    def close(self) -> None:
        """Stop listening and drop every held connection (the port is free again)."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._thread.join(WAIT)
        for connection in self.accepted:
            connection.close()


class Arrivals:
    """A receiver's ``respond`` that notes when each request arrived, and answers as told."""

    def __init__(self, answer: Callable[[], Reply] = lambda: (200, b"ok")) -> None:
        self.answer = answer
        self.lock = threading.Lock()
        #: (monotonic time, delivery id, status answered)
        self.seen: list[tuple[float, str, int]] = []

    def __call__(self, request: ReceivedWebhook) -> Reply:
        status, body = self.answer()
        with self.lock:
            self.seen.append((time.monotonic(), request.delivery_id or "", status))
        return status, body

    def ids(self, status: int | None = 200) -> set[str]:
        """The delivery ids that got ``status`` (any status for None)."""
        with self.lock:
            return {i for _, i, s in self.seen if status is None or s == status}


def ids_of(results: Sequence[SendResult], subscriber: Subscriber) -> set[str]:
    """The delivery ids the sent events make for ``subscriber``."""
    return {delivery_id_for(result.message, subscriber) for result in results}


def warm(
    publisher: Thorn, workers: Sequence[WorkerProcess], make_receiver: Callable[..., Any]
) -> None:
    """Send to another receiver until every worker has delivered once: a worker's first
    delivery imports and sets up its HTTP stack, which delays it by a varying ~0.2 s."""
    receiver = make_receiver()
    event = publisher.event("warm.up", subscribers=[receiver.url("/warm")])
    deadline = time.monotonic() + WAIT
    while not all(w.task_pids() for w in workers):
        if time.monotonic() > deadline:
            pytest.fail("the workers did not all take a task")
        sent = len(receiver.received)
        event.send({})
        wait_until(lambda n=sent: len(receiver.received) > n, what="a warm-up delivery")


def max_in_window(times: Sequence[float], width: float = 1.0) -> int:
    """The most arrivals in any half-open window ``[t, t + width)``."""
    times = sorted(times)
    most = start = 0
    for end, at in enumerate(times):
        while at - times[start] >= width:
            start += 1
        most = max(most, end - start + 1)
    return most


class TestIsolation:
    """A blackholed endpoint holds neither its task's other endpoints nor later tasks."""

    def test_blackholed_endpoint_among_healthy_ones(
        self,
        publisher: Thorn,
        start_workers: Callable[..., list[WorkerProcess]],
        make_receiver: Callable[..., WebhookReceiver],
        slow_queue: str,
    ) -> None:
        """20 events to 4 healthy receivers and a blackhole (1.5 s timeout, 4 task slots):
        every healthy delivery arrives long before serial chunks could have made it, the
        blackhole's are moved to the slow queue's worker, and all arrive once it answers."""
        blackhole = Blackhole()
        healthy = [Arrivals() for _ in range(4)]
        receivers = [make_receiver(a) for a in healthy]
        subscribers = [Subscriber(url=r.url("/h"), event="a.*") for r in receivers]
        dark = Subscriber(url=blackhole.url("/dark"), event="a.*")
        for subscriber in [*subscribers, dark]:
            publisher.health.reset(endpoint_key(subscriber))
        settings = {
            "THORN_EVENT_TIMEOUT": 1.5,
            "THORN_SLOW_THRESHOLD": 0.5,
            "THORN_CELERY_SLOW_QUEUE": slow_queue,
            "THORN_CIRCUIT_MIN_REQUESTS": 3,
            "THORN_CIRCUIT_COOLOFF": 1.0,
            "THORN_CIRCUIT_COOLOFF_MAX": 2.0,
            "THORN_RETRY_BACKOFF_MAX": 1.0,
        }
        (main,) = start_workers(1, settings, concurrency=4)
        (slow,) = start_workers(1, settings, only=slow_queue, concurrency=2)
        event = publisher.event("a.b", retry_max=20)
        started = time.monotonic()
        results = [event.send({"n": n}, subscribers=[*subscribers, dark]) for n in range(20)]
        for arrivals, subscriber in zip(healthy, subscribers, strict=True):
            wanted = ids_of(results, subscriber)
            wait_until(lambda a=arrivals, w=wanted: w <= a.ids(), what="healthy deliveries")
        last = max(at for arrivals in healthy for at, _, _ in arrivals.seen) - started
        # Serial chunks: 20 tasks, each held 1.5 s by the blackhole, on 4 slots: >= 7.5 s.
        assert last < 4.5, f"the last healthy delivery took {last:.1f} s"
        assert slow.task_pids(), "the blackhole's deliveries went to the slow queue's worker"
        held = len(blackhole.accepted)
        assert 1 <= held < 20
        blackhole.close()
        recovered = Arrivals()
        with WebhookReceiver(port=blackhole.port, respond=recovered):
            wanted = ids_of(results, dark)
            wait_until(lambda: wanted <= recovered.ids(), what="the blackhole's deliveries")
        assert main.task_pids()


class TestCircuit:
    """A receiver answering 503 opens its circuit: few attempts while down, nothing lost."""

    def test_503_then_recovery(
        self,
        publisher: Thorn,
        start_workers: Callable[..., list[WorkerProcess]],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """30 events to a receiver down for 3 s (503) and a healthy one, on two workers:
        the breaker bounds the attempts while down, and every delivery arrives after."""
        down = threading.Event()
        down.set()
        flaky = Arrivals(lambda: (503, b"down") if down.is_set() else (200, b"ok"))
        steady = Arrivals()
        flaky_subscriber = Subscriber(url=make_receiver(flaky).url("/flaky"), event="a.*")
        steady_subscriber = Subscriber(url=make_receiver(steady).url("/steady"), event="a.*")
        for subscriber in (flaky_subscriber, steady_subscriber):
            publisher.health.reset(endpoint_key(subscriber))
        settings = {
            "THORN_CIRCUIT_MIN_REQUESTS": 4,
            "THORN_CIRCUIT_FAILURE_RATE": 0.5,
            "THORN_CIRCUIT_COOLOFF": 0.5,
            "THORN_CIRCUIT_COOLOFF_MAX": 1.0,
            "THORN_RETRY_BACKOFF_MAX": 0.5,
        }
        start_workers(2, settings)
        event = publisher.event("a.b", retry_max=10)
        results = [
            event.send({"n": n}, subscribers=[flaky_subscriber, steady_subscriber])
            for n in range(30)
        ]
        wanted = ids_of(results, steady_subscriber)
        wait_until(lambda: wanted <= steady.ids(), what="the healthy receiver's deliveries")
        wait_until(lambda: bool(flaky.seen), what="a first attempt at the flaky receiver")
        time.sleep(3.0)
        with flaky.lock:
            down.clear()
            attempts_while_down = len(flaky.seen)
        wanted = ids_of(results, flaky_subscriber)
        wait_until(lambda: wanted <= flaky.ids(200), what="every delivery after recovery")
        # Without the breaker: 30 deliveries retried every 0.2-0.5 s for 3 s (~200 attempts).
        # With it: 4 to open it, those in flight on 4 slots, a probe per cool-off (6 at most).
        assert attempts_while_down <= 20, attempts_while_down


class TestRateLimit:
    """A rate limit holds across both workers: none sent early, none dropped."""

    def test_never_over_the_limit_in_any_second(
        self,
        publisher: Thorn,
        start_workers: Callable[..., list[WorkerProcess]],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """25 events to an endpoint limited to 5/s, on two workers: no one-second window
        holds more than 5 arrivals (give or take the network's jitter), and all 25 arrive,
        over 4.8 s at least."""
        arrivals = Arrivals()
        subscriber = Subscriber(
            url=make_receiver(arrivals).url("/limited"), event="a.*", rate_limit=5.0
        )
        publisher.health.reset(endpoint_key(subscriber))
        workers = start_workers(2, {})
        warm(publisher, workers, make_receiver)
        event = publisher.event("a.b")
        results = [event.send({"n": n}, subscribers=[subscriber]) for n in range(25)]
        wanted = ids_of(results, subscriber)
        wait_until(lambda: wanted <= arrivals.ids(), what="every rate-limited delivery")
        times = [at for at, _, _ in arrivals.seen]
        assert len(times) == 25
        # The limit holds where tokens are taken; arrivals add up to 50 ms of jitter (a new
        # connection's first request is later than the next one on it).
        assert max_in_window(times, 1.0 - JITTER) <= 5
        assert max(times) - min(times) >= 24 / 5 - JITTER


class TestSharedStreak:
    """The failure streak that disables a subscriber counts the attempts of every worker."""

    def test_streak_counts_both_workers(
        self,
        publisher: Thorn,
        start_workers: Callable[..., list[WorkerProcess]],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """6 failing deliveries split between two workers reach THORN_FAILURE_LIMIT=6: one
        of them switches the subscriber off (neither saw 6 failures of its own)."""

        def refuse() -> Reply:
            time.sleep(0.15)  # long enough for both workers to take tasks
            return 400, b"no"

        arrivals = Arrivals(refuse)
        receiver = make_receiver(arrivals)
        static = {"url": receiver.url("/refuses"), "uuid": str(uuid.uuid4())}
        settings = {
            "THORN_SUBSCRIBERS": {"a.*": [static]},
            "THORN_FAILURE_LIMIT": 6,
            "THORN_FAILURE_WINDOW": 0,
            "THORN_CIRCUIT_MIN_REQUESTS": 1000,
        }
        workers = start_workers(2, settings, concurrency=1)
        event = publisher.event("a.b", retry=False)
        for n in range(6):
            event.send({"n": n})
        wait_until(lambda: len(arrivals.seen) == 6, what="6 failed attempts")

        def marks() -> list[Path]:
            return [p for w in workers for p in w.pid_dir.glob(f"deactivated-{static['uuid']}")]

        wait_until(lambda: bool(marks()), what="the subscriber to be switched off")
        assert all(w.task_pids() for w in workers), "both workers made attempts"
        assert len(marks()) == 1
