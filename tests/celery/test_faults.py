"""Faults, counted: a receiver that is down for a while, a Redis broker restarted mid-run.

Each test counts what was sent against what arrived: every delivery id arrives at least
once (duplicates are allowed, and deduplicated on ``Hook-Delivery`` by receivers).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from thorn_core import Event, SendResult, Subscriber, Thorn
from thorn_core.fanout import delivery_id_for
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver

from ._celery_support import (
    IN_CI,
    LOOPBACK_VALIDATORS,
    WAIT,
    SupervisedWorker,
    delete_queue,
)


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def expected_ids(results: list[SendResult], subscriber: Subscriber) -> set[str]:
    """The delivery ids the sent events make for ``subscriber``."""
    return {delivery_id_for(result.message, subscriber) for result in results}


def wait_for_ids(receiver: WebhookReceiver, wanted: set[str], timeout: float = WAIT) -> set[str]:
    """Wait until every id of ``wanted`` has arrived; return the ids that arrived."""
    deadline = time.monotonic() + timeout
    while True:
        got = {r.delivery_id for r in list(receiver.received)}
        if wanted <= got or time.monotonic() > deadline:
            return {i for i in got if i is not None}
        time.sleep(0.05)


class TestReceiverDown:
    """A receiver that is down, then back: the celery dispatcher's retries deliver everything."""

    def test_every_delivery_arrives(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """20 events to a port nobody listens on for 1 s: every id arrives once it is back."""
        port = free_port()
        url = f"http://127.0.0.1:{port}/hook"
        subscriber = Subscriber(url=url, event="a.*", hmac_secret="s3cret-s3cret")
        make_thorn({"THORN_RETRY_BACKOFF_MAX": 0.8})
        event = Event("a.b", retry_delay=0.2, retry_max=10)
        results = [event.send({"n": n}, subscribers=[subscriber]) for n in range(20)]
        wanted = expected_ids(results, subscriber)
        assert len(wanted) == 20
        received: list[ReceivedWebhook] = []
        with run_worker():
            time.sleep(1.0)  # every first attempt is refused meanwhile
            with WebhookReceiver(port=port) as receiver:
                got = wait_for_ids(receiver, wanted)
                received = list(receiver.received)
        assert got == wanted
        assert len(received) >= 20
        assert sorted(r.json()["n"] for r in {r.delivery_id: r for r in received}.values()) == list(
            range(20)
        )

    def test_failing_answers_then_recovery(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """A receiver answering 503 for a while: every delivery id arrives with a 2xx answer."""
        recovered = threading.Event()

        def respond(_request: ReceivedWebhook) -> Reply:
            return (200, b"ok") if recovered.is_set() else (503, b"restarting")

        receiver = make_receiver(respond)
        subscriber = Subscriber(url=receiver.url(), event="a.*")
        make_thorn({"THORN_RETRY_BACKOFF_MAX": 0.8})
        event = Event("a.b", retry_delay=0.2, retry_max=10)
        results = [event.send({"n": n}, subscribers=[subscriber]) for n in range(10)]
        wanted = expected_ids(results, subscriber)
        with run_worker():
            receiver.wait_for(10, WAIT)
            time.sleep(0.5)
            recovered.set()
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                # Answers are decided on arrival, so count ids that arrived after recovery.
                late = {r.delivery_id for r in list(receiver.received)[10:]}
                if wanted <= late:
                    break
                time.sleep(0.05)
        assert wanted <= {r.delivery_id for r in receiver.received[10:]}


class RedisServer:
    """A redis-server of the test's own, on a free port, persisting every write (AOF)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server on the same port and directory; wait until it answers."""
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(  # noqa: S603 - the system's redis-server
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server as a restart does (SIGTERM: it closes clients and syncs its AOF)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(WAIT)

    def kill(self) -> None:
        """SIGKILL the server (no shutdown, no final save)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(WAIT)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (the shared one on 6379 must never be restarted)."""
    if shutil.which("redis-server") is None:
        reason = "redis-server is not on PATH"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the broker restart test must run)")
        pytest.skip(reason)
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    yield server
    server.kill()


class TestBrokerRestart:
    """Redis restarted mid-run: nothing sent is lost.

    A restart, not a crash: kombu's Redis transport takes a message off the queue and records
    it as unacknowledged in two steps, and a SIGKILL between them loses that message
    (docs/celery.md). RabbitMQ has no such window.
    """

    def test_redis_restart_loses_nothing(
        self, own_redis: RedisServer, make_receiver: Callable[..., WebhookReceiver], tmp_path: Path
    ) -> None:
        """60 events, slow deliveries, stop Redis after 10 arrived, publish 30 more while it
        is down, start it again: every delivery id arrives."""

        def slow(_request: ReceivedWebhook) -> Reply:
            time.sleep(0.03)
            return 200, b"ok"

        receiver = make_receiver(slow)
        queue = f"thorn-test-{uuid.uuid4().hex[:12]}"
        capp = Celery("thorn-restart", broker=own_redis.url, set_as_current=False)
        capp.conf.update(
            broker_connection_retry_on_startup=True,
            # Publishing waits out a broker restart instead of failing the send.
            task_publish_retry_policy={
                "max_retries": 50,
                "interval_start": 0,
                "interval_step": 0.1,
                "interval_max": 0.3,
            },
            broker_transport_options={"socket_timeout": 5, "socket_connect_timeout": 2},
        )
        app = Thorn(
            {
                "THORN_DISPATCHER": "celery",
                "THORN_CELERY_APP": capp,
                "THORN_CELERY_QUEUE": queue,
                "THORN_RECIPIENT_VALIDATORS": LOOPBACK_VALIDATORS,
            },
            set_as_current=False,
        )
        subscriber = Subscriber(url=receiver.url(), event="a.*", hmac_secret="s3cret-s3cret")
        pid_dir = tmp_path / "pids"
        pid_dir.mkdir()
        # Supervised as docs/celery.md asks: the worker may exit when Redis goes away (a
        # kombu consumer that fails to restore its unacknowledged messages on a closed
        # connection ends the worker); what was published must still arrive.
        worker = SupervisedWorker(own_redis.url, queue, "threads", 2, pid_dir)
        try:
            results = [app.event("a.b").send({"n": n}, subscribers=[subscriber]) for n in range(30)]
            receiver.wait_for(10, WAIT)
            own_redis.stop()
            assert len(receiver.received) < 30  # stopped mid-run
            later: list[SendResult] = []
            publisher = threading.Thread(
                target=lambda: later.extend(
                    app.event("a.b").send({"n": n}, subscribers=[subscriber]) for n in range(30, 60)
                )
            )
            publisher.start()
            time.sleep(0.5)
            own_redis.start()
            publisher.join(WAIT)
            assert not publisher.is_alive()
            wanted = expected_ids(results + later, subscriber)
            assert len(wanted) == 60
            got = wait_for_ids(receiver, wanted)
            missing = wanted - got
            assert not missing, f"{len(missing)} deliveries lost\n{worker.log_text()[-3000:]}"
            assert got == wanted
        finally:
            worker.stop()
            app.close()
            with contextlib.suppress(Exception):
                delete_queue(capp, queue)
            capp.close()


class TestPublishFailures:
    """A broker that refuses a publish in the middle of a chunk drops no delivery."""

    def test_failed_retry_publish_is_published_after_the_chunk(
        self,
        celery_app: Celery,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        make_receiver: Callable[..., WebhookReceiver],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The retry of /a cannot be published at first; /b and /c still get their delivery,
        and the retry goes out after the chunk and arrives."""
        answers = iter([(503, b"busy")])
        flaky = make_receiver(lambda _request: next(answers, (200, b"ok")))
        steady = make_receiver()
        make_thorn({"THORN_RETRY_DELAY": 0.1})
        real_send_task = celery_app.send_task
        refused: list[str] = []

        def send_task(name: str, *args: Any, **kwargs: Any) -> Any:
            if name == "thorn.deliver" and not refused:
                refused.append(name)
                raise ConnectionError("broker blip")
            return real_send_task(name, *args, **kwargs)

        monkeypatch.setattr(celery_app, "send_task", send_task)
        Event("a.b").send({"n": 1}, subscribers=[flaky.url("/a"), steady.url("/b")])
        with run_worker():
            flaky.wait_for(2, WAIT)
            steady.wait_for(1, WAIT)
        assert refused == ["thorn.deliver"]
        first, second = flaky.received
        assert first.delivery_id == second.delivery_id
        assert len(steady.received) == 1
