"""Real workers on real brokers: delivery, chunking, retries, killed workers, worker pools."""

from __future__ import annotations

import importlib.util
import itertools
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery.signals import task_prerun

from thorn_core import Delivery, Event, Subscriber, Thorn, signals
from thorn_core.dispatchers.celery import DELIVER_TASK, DISPATCH_TASK
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver

from ._celery_support import WAIT, RecordingSource, WorkerProcess, wait_until


@pytest.fixture
def task_names() -> Iterator[Counter[str]]:
    """Count the tasks the in-process worker starts, by name."""
    seen: Counter[str] = Counter()

    def count(sender: Any = None, **_: Any) -> None:
        seen[sender.name] += 1

    task_prerun.connect(count, weak=False)
    yield seen
    task_prerun.disconnect(count)


@pytest.fixture
def retrying() -> Iterator[list[tuple[str, float]]]:
    """Record ``delivery_retrying`` signals as (delivery id, delay)."""
    seen: list[tuple[str, float]] = []

    def record(_: Any, *, delivery: Delivery, delay: float) -> None:
        seen.append((delivery.id, delay))

    signals.delivery_retrying.connect(record, weak=False)
    yield seen
    signals.delivery_retrying.disconnect(record)


class TestDelivery:
    """An in-process worker resolves subscribers and delivers signed requests."""

    def test_static_and_stored_subscribers(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        receiver: WebhookReceiver,
        task_names: Counter[str],
    ) -> None:
        """Static and stored subscribers receive the event; an owned one only its owner's."""
        app = make_thorn(
            {"THORN_SUBSCRIBERS": {"a.*": {"url": receiver.url("/static"), "hmac_secret": "s1"}}}
        )
        source = RecordingSource(
            [
                Subscriber(url=receiver.url("/stored"), event="a.*", hmac_secret="s2"),
                Subscriber(url=receiver.url("/owned"), event="a.*", user=8, hmac_secret="s3"),
            ]
        )
        app.add_subscriber_source(source)
        result = Event("a.b").send({"n": 1}, sender=7)
        assert result.state == "queued"
        with run_worker():
            got = receiver.wait_for(2, WAIT)
            time.sleep(0.2)
        assert sorted(r.path for r in receiver.received) == ["/static", "/stored"]
        by_path = {r.path: r for r in got}
        assert by_path["/static"].hook_hmac_valid("s1")
        assert by_path["/static"].standard_webhook_valid("s1")
        assert by_path["/stored"].hook_hmac_valid("s2")
        assert {r.event for r in got} == {"a.b"}
        assert {r.json()["n"] for r in got} == {1}
        assert len({r.delivery_id for r in got}) == 2
        assert source.lookups == ["a.b"]
        assert task_names == Counter({DISPATCH_TASK: 1})

    def test_chunks_sorted_by_url_share_connections(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        port_server: Any,
        receiver: WebhookReceiver,
        task_names: Counter[str],
    ) -> None:
        """12 deliveries with THORN_CHUNKSIZE=5: three chunk tasks, in URL order, on kept-alive
        connections (at most one per host per chunk)."""
        urls = [port_server.url(f"/{n:02d}") for n in range(6)]
        urls += [receiver.url(f"/{n:02d}") for n in range(6)]
        make_thorn({"THORN_CHUNKSIZE": 5, "THORN_SUBSCRIBERS": {"a.*": list(reversed(urls))}})
        Event("a.b").send({"n": 1})
        with run_worker(concurrency=1):
            receiver.wait_for(6, WAIT)
            wait_until(lambda: len(port_server.requests) == 6, what="6 requests")
        assert task_names == Counter({DISPATCH_TASK: 1, DELIVER_TASK: 3})
        if port_server.url() < receiver.url():
            first_paths = [path for path, _ in port_server.requests]
        else:
            first_paths = [r.path for r in receiver.received]
        assert first_paths == [f"/{n:02d}" for n in range(6)]
        ports = {port for _, port in port_server.requests}
        assert len(ports) <= 2

    def test_refused_and_final_failures_are_not_retried(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        make_receiver: Callable[..., WebhookReceiver],
        retrying: list[tuple[str, float]],
    ) -> None:
        """A 400 answer is final: one request, no retry."""
        bad = make_receiver(lambda _: (400, b"no"))
        make_thorn({"THORN_RETRY_DELAY": 0.1, "THORN_SUBSCRIBERS": {"a.*": bad.url()}})
        failed: list[Delivery] = []

        def record(_: Any, *, delivery: Delivery) -> None:
            failed.append(delivery)

        signals.delivery_failed.connect(record, weak=False)
        try:
            Event("a.b").send({})
            with run_worker():
                bad.wait_for(1, WAIT)
                wait_until(lambda: len(failed) == 1, what="the failure")
                time.sleep(0.4)
        finally:
            signals.delivery_failed.disconnect(record)
        assert len(bad.received) == 1
        assert retrying == []
        assert failed[0].status_code == 400


class TestRetries:
    """Failed deliveries are retried one by one with the shared RetryPolicy."""

    def test_subscriber_lookup_failure_retries_the_event(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        receiver: WebhookReceiver,
        task_names: Counter[str],
    ) -> None:
        """A subscriber source that fails once (a database down) retries the event task;
        the delivery then arrives once."""
        calls: list[str] = []

        class Flaky:
            def matching(self, event: str, sender: Any = None, context: Any = None) -> Any:
                calls.append(event)
                if len(calls) == 1:
                    raise ConnectionError("database is down")
                return [Subscriber(url=receiver.url("/stored"), event="a.*")]

        app = make_thorn({"THORN_RETRY_DELAY": 0.1})
        app.add_subscriber_source(Flaky())
        Event("a.b").send({})
        with run_worker():
            receiver.wait_for(1, WAIT)
            time.sleep(0.3)
        assert len(receiver.received) == 1
        assert calls == ["a.b", "a.b"]
        assert task_names == Counter({DISPATCH_TASK: 2})

    def test_fails_twice_then_succeeds(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        make_receiver: Callable[..., WebhookReceiver],
        retrying: list[tuple[str, float]],
        task_names: Counter[str],
    ) -> None:
        """Two 503s then 200: three requests with one delivery id, fresh signatures, growing
        delays; the other delivery of the same chunk arrives once."""
        arrivals: list[float] = []

        def flaky(_: ReceivedWebhook) -> Reply:
            arrivals.append(time.monotonic())
            return (503, b"busy") if len(arrivals) <= 2 else (200, b"ok")

        failing = make_receiver(flaky)
        steady = make_receiver()
        make_thorn(
            {
                "THORN_RETRY_DELAY": 0.4,
                "THORN_RETRY_MAX": 5,
                "THORN_SUBSCRIBERS": {
                    "a.*": [
                        {"url": failing.url(), "hmac_secret": "s1"},
                        {"url": steady.url(), "hmac_secret": "s2"},
                    ]
                },
            }
        )
        Event("a.b").send({"n": 1})
        with run_worker():
            got = failing.wait_for(3, WAIT)
            time.sleep(0.5)
        assert len(failing.received) == 3
        assert len(steady.received) == 1
        assert len({r.delivery_id for r in got}) == 1
        assert all(r.standard_webhook_valid("s1") and r.hook_hmac_valid("s1") for r in got)
        assert [d for d, _ in retrying] == [got[0].delivery_id] * 2
        delays = [delay for _, delay in retrying]
        assert 0.2 <= delays[0] <= 0.4 <= delays[1] <= 0.8
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert all(gap >= delay - 0.05 for gap, delay in zip(gaps, delays, strict=True))
        assert task_names == Counter({DISPATCH_TASK: 1, DELIVER_TASK: 2})


def _hold_first(release: threading.Event) -> tuple[Callable[[ReceivedWebhook], Reply], list[str]]:
    """A responder that holds the first request until ``release``; and the ids it saw."""
    seen: list[str] = []
    lock = threading.Lock()

    def respond(request: ReceivedWebhook) -> Reply:
        with lock:
            seen.append(request.delivery_id or "")
            first = len(seen) == 1
        if first:
            release.wait(WAIT)
        return 200, b"ok"

    return respond, seen


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Released at teardown: frees a request a test left hanging."""
    event = threading.Event()
    yield event
    event.set()


def _send_events(app: Thorn, receiver: WebhookReceiver, count: int) -> None:
    for n in range(count):
        subscribers = [receiver.url(f"/{n}/a"), receiver.url(f"/{n}/b")]
        app.event("a.b", subscribers=subscribers).send({"n": n})


def _check_all_delivered(receiver: WebhookReceiver, seen: list[str], count: int) -> None:
    """Every (event, subscriber) answered; each under one id; the held request's id again."""
    wait_until(
        lambda: (
            {r.path for r in receiver.received} >= {f"/{n}/{s}" for n in range(count) for s in "ab"}
        ),
        what="every delivery",
    )
    ids_by_path: dict[str, set[str]] = {}
    for request in receiver.received:
        ids_by_path.setdefault(request.path, set()).add(request.delivery_id or "")
    assert all(len(ids) == 1 for ids in ids_by_path.values()), ids_by_path
    assert len({id_ for ids in ids_by_path.values() for id_ in ids}) == 2 * count
    assert seen.count(seen[0]) >= 2, "the request in flight when the worker died came again"


class TestKilledWorkers:
    """acks_late + reject_on_worker_lost: a worker killed mid-delivery loses nothing."""

    def test_sigkill_worker_then_start_another(
        self,
        make_thorn: Callable[..., Thorn],
        worker_process: Callable[..., WorkerProcess],
        make_receiver: Callable[..., WebhookReceiver],
        release: threading.Event,
    ) -> None:
        """SIGKILL the whole worker in a slow delivery; a new worker delivers every event,
        the interrupted one under its original delivery id."""
        respond, seen = _hold_first(release)
        receiver = make_receiver(respond)
        app = make_thorn()
        _send_events(app, receiver, 3)
        first = worker_process(pool="threads", concurrency=1)
        wait_until(lambda: len(seen) == 1, what="the first delivery")
        first.kill()
        worker_process(pool="threads", concurrency=1)
        _check_all_delivered(receiver, seen, 3)

    def test_sigkill_pool_process(
        self,
        make_thorn: Callable[..., Thorn],
        worker_process: Callable[..., WorkerProcess],
        make_receiver: Callable[..., WebhookReceiver],
        release: threading.Event,
    ) -> None:
        """SIGKILL the prefork child in a slow delivery; the pool starts another child and the
        requeued message is delivered under its original delivery ids."""
        respond, seen = _hold_first(release)
        receiver = make_receiver(respond)
        app = make_thorn()
        _send_events(app, receiver, 2)
        worker = worker_process(pool="prefork", concurrency=1)
        wait_until(lambda: len(seen) == 1, what="the first delivery")
        (child,) = worker.task_pids()
        assert child != worker.process.pid
        os.kill(child, signal.SIGKILL)
        _check_all_delivered(receiver, seen, 2)
        assert len(worker.task_pids()) == 2


class TestPools:
    """prefork, threads and gevent worker pools all deliver."""

    @pytest.mark.parametrize("pool", ["prefork", "threads", "gevent"])
    def test_pool_delivers(
        self,
        pool: str,
        make_thorn: Callable[..., Thorn],
        worker_process: Callable[..., WorkerProcess],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """A worker subprocess with this pool delivers a fan-out of 4 events to 3 subscribers."""
        if pool == "gevent" and importlib.util.find_spec("gevent") is None:
            pytest.skip("gevent is not installed")
        receiver = make_receiver()
        app = make_thorn({"THORN_CHUNKSIZE": 2})
        for n in range(4):
            urls = [receiver.url(f"/{n}/{s}") for s in "abc"]
            app.event("a.b", subscribers=urls).send({"n": n})
        worker_process(pool=pool, concurrency=2)
        got = receiver.wait_for(12, WAIT)
        assert sorted(r.path for r in got) == sorted(f"/{n}/{s}" for n in range(4) for s in "abc")
