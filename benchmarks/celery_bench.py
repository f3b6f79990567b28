"""Benchmark of the Celery dispatcher: ``send()`` cost in the request path, worker throughput.

Run from the repository root, with Redis at 127.0.0.1:6379 (``pip install -e '.[test]'``)::

    python -m benchmarks.celery_bench [--broker URL] [--sends N] [--events N] [--fanout N]

1. ``send()`` with the Celery dispatcher, in microseconds per event, with 0 and with 10,000
   stored subscribers (a SQLite subscriber source with an indexed ``event`` column). The
   request path publishes one message and looks nothing up, so the two should match.
2. Worker throughput in deliveries per second to one loopback receiver, for the prefork,
   threads and gevent pools, against the ``default`` dispatcher on the same receiver.

It prints numbers; it is not a test and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery import Celery
from kombu import Exchange, Queue

from benchmarks.stores import SQLiteSubscribers
from thorn_core import Thorn
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = (
    ["ensure_protocol", ["http"]],
    ["block_internal_ips", []],
    ["allow_cidr_network", ["127.0.0.0/8"]],
)


def _celery(broker: str) -> Celery:
    capp = Celery("thorn-bench", broker=broker, set_as_current=False)
    capp.conf.broker_connection_retry_on_startup = True
    return capp


def _delete_queue(capp: Celery, queue: str) -> None:
    exchange = Exchange(queue, type="direct")
    with capp.connection_for_write() as connection:
        channel = connection.default_channel
        bound = Queue(queue, exchange, routing_key=queue)(channel)
        bound.declare()
        bound.delete()
        exchange(channel).delete()


def bench_send(broker: str, sends: int) -> None:
    """Microseconds per ``send()`` with 0 and 10,000 stored subscribers."""
    print(f"send() with the celery dispatcher on {broker}  ({sends} sends, best of 3)")
    capp = _celery(broker)
    queue = f"thorn-bench-{uuid.uuid4().hex[:8]}"
    try:
        for stored in (0, 10_000):
            source = SQLiteSubscribers(stored, matching=min(stored, 10), event="article.published")
            app = Thorn(
                {
                    "THORN_DISPATCHER": "celery",
                    "THORN_CELERY_APP": capp,
                    "THORN_CELERY_QUEUE": queue,
                },
                set_as_current=False,
            )
            app.add_subscriber_source(source)
            event = app.event("article.published")
            payload = {"id": 1, "title": "Thorn", "tags": ["a", "b"]}
            for _ in range(200):  # connect, declare the queue, warm caches
                event.send(payload, sender=1)
            runs = []
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(sends):
                    event.send(payload, sender=1)
                runs.append((time.perf_counter() - start) / sends * 1e6)
            start = time.perf_counter()
            for _ in range(200):
                found = source.matching("article.published", 1)
            lookup = (time.perf_counter() - start) / 200 * 1e6
            print(
                f"  {stored:>6} stored subscribers: {min(runs):7.1f} us/event "
                f"(median {statistics.median(runs):.1f}); the worker's lookup of "
                f"{len(found)} matching subscribers takes {lookup:.0f} us"
            )
            app.close()
    finally:
        _delete_queue(capp, queue)
        capp.close()


class _Arrivals:
    """A responder that answers 200 and notes when each request arrived."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, _: ReceivedWebhook) -> Reply:
        with self.lock:
            self.times.append(time.monotonic())
        return 200, b"ok"

    def wait(self, count: int, timeout: float) -> float:
        """Deliveries per second from the first arrival to the ``count``-th."""
        deadline = time.monotonic() + timeout
        while len(self.times) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.times)} of {count} deliveries arrived")
            time.sleep(0.01)
        first, last = self.times[0], self.times[count - 1]
        return (count - 1) / (last - first)


@contextmanager
def _receiver() -> Iterator[tuple[WebhookReceiver, _Arrivals]]:
    arrivals = _Arrivals()
    receiver = WebhookReceiver(respond=arrivals).start()
    try:
        yield receiver, arrivals
    finally:
        receiver.stop()


def _send_events(app: Thorn, receiver: WebhookReceiver, events: int, fanout: int) -> None:
    urls = [receiver.url(f"/{n}") for n in range(fanout)]
    event = app.event("article.published", subscribers=urls)
    for n in range(events):
        event.send({"id": n, "title": "Thorn"})


def bench_worker(broker: str, pool: str, concurrency: int, events: int, fanout: int) -> float:
    """Deliveries per second of one worker subprocess with ``pool``."""
    capp = _celery(broker)
    queue = f"thorn-bench-{uuid.uuid4().hex[:8]}"
    settings = {
        "THORN_DISPATCHER": "celery",
        "THORN_CELERY_APP": capp,
        "THORN_CELERY_QUEUE": queue,
        "THORN_CHUNKSIZE": fanout,
    }
    try:
        with _receiver() as (receiver, arrivals):
            app = Thorn(settings, set_as_current=False)
            _send_events(app, receiver, events, fanout)
            app.close()
            env = {
                **os.environ,
                "THORN_BENCH_BROKER": broker,
                "THORN_BENCH_QUEUE": queue,
            }
            worker = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "benchmarks._celery_worker:celery_app",
                    "worker",
                    f"--pool={pool}",
                    f"--concurrency={concurrency}",
                    f"--queues={queue}",
                    f"--hostname=thorn-bench-{uuid.uuid4().hex[:8]}@%h",
                    "--without-mingle",
                    "--without-gossip",
                    "--without-heartbeat",
                    "--loglevel=WARNING",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                return arrivals.wait(events * fanout, timeout=300)
            finally:
                worker.terminate()
                worker.wait(60)
    finally:
        _delete_queue(capp, queue)
        capp.close()


def bench_default(events: int, fanout: int) -> float:
    """Deliveries per second of the ``default`` dispatcher (in process, fan-out on threads)."""
    with _receiver() as (receiver, arrivals):
        app = Thorn(
            {"THORN_RECIPIENT_VALIDATORS": LOOPBACK, "THORN_POOL_SIZE": 10}, set_as_current=False
        )
        _send_events(app, receiver, events, fanout)
        app.close()
        return arrivals.wait(events * fanout, timeout=300)


def main(argv: list[str] | None = None) -> None:
    """Run both benchmarks and print their numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--sends", type=int, default=5000, help="send() calls per run")
    parser.add_argument("--events", type=int, default=200, help="events per throughput run")
    parser.add_argument("--fanout", type=int, default=10, help="subscribers per event")
    parser.add_argument("--skip-send", action="store_true")
    parser.add_argument("--skip-workers", action="store_true")
    args = parser.parse_args(argv)
    cpus = os.cpu_count() or 1

    if not args.skip_send:
        bench_send(args.broker, args.sends)
        print()
    if not args.skip_workers:
        total = args.events * args.fanout
        print(
            f"Throughput to one loopback receiver: {args.events} events x {args.fanout} "
            f"subscribers = {total} deliveries ({cpus} CPUs)"
        )
        rate = bench_default(args.events, args.fanout)
        print(f"  {'default dispatcher, 10 threads':<34} {rate:8.0f} deliveries/s")
        for pool, concurrency in (("prefork", cpus), ("threads", 10), ("gevent", 50)):
            rate = bench_worker(args.broker, pool, concurrency, args.events, args.fanout)
            label = f"celery worker, {pool} x{concurrency}"
            print(f"  {label:<34} {rate:8.0f} deliveries/s")


if __name__ == "__main__":
    main()
