"""Celery fixtures: real brokers (Redis, RabbitMQ), real workers, real receivers on 127.0.0.1.

Every test that takes ``broker`` runs once per real broker. A broker that cannot be reached
skips its tests with the reason, or fails them when ``CI=true``. Celery's in-memory broker
is used only when neither real broker is reachable (and never in CI); tests that need a
worker in another process skip on it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("celery", reason="the Celery tests need celery (pip install '.[test]')")

import contextlib

from celery.contrib.testing.worker import start_worker

from celery import Celery
from thorn_core import Subscriber, Thorn
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver

HERE = Path(__file__).resolve().parent
#: Seconds a test waits for something that should happen soon.
WAIT = 15.0
IN_CI = os.environ.get("CI", "").lower() == "true"

BROKERS = {
    "redis": "redis://127.0.0.1:6379/0",
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
}
#: Recipient validators as specs (so a worker subprocess can be given them): the safety
#: checks stay on, with 127.0.0.0/8 allowed for the receivers of these tests.
LOOPBACK_VALIDATORS = (
    ["ensure_protocol", ["http", "https"]],
    ["block_internal_ips", []],
    ["allow_cidr_network", ["127.0.0.0/8"]],
)


def reachable(url: str) -> bool:
    """Whether something listens at the host and port of ``url``."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=0.5).close()
    except OSError:
        return False
    return True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run ``broker`` tests on each real broker; on the memory broker only when both are down."""
    if "broker" not in metafunc.fixturenames:
        return
    names = list(BROKERS)
    if not IN_CI and not any(reachable(url) for url in BROKERS.values()):
        names.append("memory")
    metafunc.parametrize("broker", names, indirect=True)


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> str:
    """The broker URL of this parametrisation; skips (fails in CI) when it is unreachable."""
    name: str = request.param
    if name == "memory":
        return "memory://"
    url = BROKERS[name]
    if not reachable(url):
        reason = f"{name} broker at {url} is not reachable"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the broker-backed tests must run)")
        pytest.skip(reason)
    return url


@pytest.fixture
def queue() -> str:
    """A queue of this test alone, so leftovers of other runs never reach its worker."""
    return f"thorn-test-{uuid.uuid4().hex[:12]}"


def delete_queue(capp: Celery, queue: str) -> None:
    """Remove ``queue`` from the broker (it holds nothing the next test wants)."""
    with capp.connection_for_write() as connection:
        connection.default_channel.queue_delete(queue)


@pytest.fixture
def celery_app(broker: str, queue: str) -> Iterator[Celery]:
    """A Celery app on the broker, not the current one; its queue is deleted afterwards."""
    capp = Celery("thorn-tests", broker=broker, set_as_current=False)
    capp.conf.update(
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_prefetch_multiplier=1,
    )
    yield capp
    if broker != "memory://":
        delete_queue(capp, queue)
    capp.close()


@pytest.fixture
def make_thorn(celery_app: Celery, queue: str) -> Iterator[Callable[..., Thorn]]:
    """Build current Thorn apps on the celery dispatcher; the in-process worker uses them too."""
    apps: list[Thorn] = []

    def make(settings: Mapping[str, Any] | None = None) -> Thorn:
        app = Thorn(
            {
                "THORN_DISPATCHER": "celery",
                "THORN_CELERY_APP": celery_app,
                "THORN_CELERY_QUEUE": queue,
                "THORN_RECIPIENT_VALIDATORS": LOOPBACK_VALIDATORS,
                **(settings or {}),
            }
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def run_worker(celery_app: Celery, queue: str) -> Callable[..., Any]:
    """Start an in-process worker (threads pool) on the test's queue, as a context manager."""

    def run(concurrency: int = 4) -> Any:
        return start_worker(
            celery_app,
            pool="threads",
            concurrency=concurrency,
            perform_ping_check=False,
            queues=[queue],
            shutdown_timeout=WAIT,
        )

    return run


def stop_promptly(stop: Callable[[], None], url: str) -> None:
    """Call ``stop`` and wake the server's poll meanwhile, so teardown does not idle."""
    parts = urlsplit(url)
    stopper = threading.Thread(target=stop)
    stopper.start()
    while stopper.is_alive():
        with contextlib.suppress(OSError):
            socket.create_connection((parts.hostname, parts.port), timeout=0.1).close()
        stopper.join(0.01)


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    """Start real receivers on 127.0.0.1, optionally with a ``respond`` callable."""
    started: list[WebhookReceiver] = []

    def make(respond: Callable[[ReceivedWebhook], Reply] | None = None) -> WebhookReceiver:
        running = WebhookReceiver(respond=respond).start()
        started.append(running)
        return running

    yield make
    for running in started:
        stop_promptly(running.stop, running.url())


@pytest.fixture
def receiver(make_receiver: Callable[..., WebhookReceiver]) -> WebhookReceiver:
    """A real receiver on 127.0.0.1 answering 200."""
    return make_receiver()


class RecordingSource:
    """A stored-subscriber source (as an ORM adapter provides) that records every lookup."""

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self.subscribers = list(subscribers)
        self.lookups: list[str] = []

    def matching(
        self, event: str, sender: Any = None, context: Mapping[str, Any] | None = None
    ) -> list[Subscriber]:
        """The subscribers that accept ``sender`` (the tests use one pattern); note the lookup."""
        self.lookups.append(event)
        return [s for s in self.subscribers if s.user is None or s.user == sender]


@pytest.fixture
def recording_source() -> type[RecordingSource]:
    """The :class:`RecordingSource` class."""
    return RecordingSource


class _PortHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _PortServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.record(self.path, self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


class _PortServer(ThreadingHTTPServer):
    """A keep-alive HTTP/1.1 server that records each request's path and client port."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _PortHandler)
        self.requests: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def record(self, path: str, port: int) -> None:
        with self.lock:
            self.requests.append((path, port))

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def port_server() -> Iterator[_PortServer]:
    """A receiver that records the client port of every request (one port per connection)."""
    server = _PortServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


class WorkerProcess:
    """A ``celery worker`` subprocess on the test's broker and queue (tests/celery/worker_app)."""

    def __init__(self, broker: str, queue: str, pool: str, concurrency: int, pid_dir: Path) -> None:
        self.pid_dir = pid_dir
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "THORN_TEST_BROKER": broker,
            "THORN_TEST_QUEUE": queue,
            "THORN_TEST_PID_DIR": str(pid_dir),
            "THORN_TEST_VALIDATORS": json.dumps(LOOPBACK_VALIDATORS),
        }
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker_app:celery_app",
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            f"--queues={queue}",
            f"--hostname=thorn-test-{uuid.uuid4().hex[:8]}@%h",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ]
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def task_pids(self) -> set[int]:
        """The pids of the processes that started a Thorn task so far."""
        return {int(p.name) for p in self.pid_dir.iterdir() if p.name.isdigit()}

    def kill(self) -> None:
        """SIGKILL the worker and every process of its group (no warm or cold shutdown)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(WAIT)

    def stop(self) -> str:
        """Stop the worker (warm shutdown, then SIGKILL); return its stderr."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.kill()
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")


@pytest.fixture
def worker_process(
    broker: str, queue: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``celery worker`` subprocesses; skipped on the in-memory broker (one process)."""
    if broker == "memory://":
        pytest.skip("a worker in another process needs a real broker")
    started: list[WorkerProcess] = []

    def start(pool: str = "threads", concurrency: int = 2) -> WorkerProcess:
        pid_dir = tmp_path / f"pids-{len(started)}"
        pid_dir.mkdir()
        worker = WorkerProcess(broker, queue, pool, concurrency, pid_dir)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.02)
