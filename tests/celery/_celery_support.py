"""Helpers of the Celery tests: brokers, receivers, stored subscribers, worker subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from celery import Celery
from kombu import Exchange, Queue

from thorn_core import Subscriber
from thorn_core.subscribers import accepts_sender, sender_key

HERE = Path(__file__).resolve().parent
#: Seconds a test waits for something that should happen soon.
WAIT = 30.0
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


def delete_queue(capp: Celery, queue: str) -> None:
    """Remove ``queue`` and the exchange Celery made for it from the broker.

    The queue is declared first: kombu's virtual transports (Redis) delete only the queues
    this channel knows.
    """
    exchange = Exchange(queue, type="direct")
    with capp.connection_for_write() as connection:
        channel = connection.default_channel
        bound = Queue(queue, exchange, routing_key=queue)(channel)
        bound.declare()
        bound.delete()
        exchange(channel).delete()


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
        key = sender_key(sender)
        return [s for s in self.subscribers if accepts_sender(s, key)]


class PortHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PortServer

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


class PortServer(ThreadingHTTPServer):
    """A keep-alive HTTP/1.1 server that records each request's path and client port."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), PortHandler)
        self.requests: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def record(self, path: str, port: int) -> None:
        with self.lock:
            self.requests.append((path, port))

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class WorkerProcess:
    """A ``celery worker`` subprocess on the test's broker and queue (tests/celery/worker_app)."""

    def __init__(
        self,
        broker: str,
        queue: str,
        pool: str,
        concurrency: int,
        pid_dir: Path,
        log_name: str = "worker.log",
        *,
        settings: Mapping[str, Any] | None = None,
        queues: Iterable[str] = (),
    ) -> None:
        """Start the worker; ``settings`` are THORN_* settings added to the worker app's, and
        ``queues`` more queues it consumes besides ``queue``."""
        self.pid_dir = pid_dir
        #: The worker's node name before the ``@`` (what answers a control ``ping``).
        self.name = f"thorn-test-{uuid.uuid4().hex[:8]}"
        self.log_path = pid_dir / log_name
        self.log = self.log_path.open("wb")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "THORN_TEST_BROKER": broker,
            "THORN_TEST_QUEUE": queue,
            "THORN_TEST_PID_DIR": str(pid_dir),
            "THORN_TEST_VALIDATORS": json.dumps(LOOPBACK_VALIDATORS),
            "THORN_TEST_SETTINGS": json.dumps(dict(settings or {})),
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
            f"--queues={','.join([queue, *queues])}",
            f"--hostname={self.name}@%h",
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
            stderr=self.log,
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
        self.log.close()

    def stop(self) -> None:
        """Warm shutdown (finished tasks are acknowledged, held ones given back), else SIGKILL."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(WAIT)
        self.kill()

    def log_text(self) -> str:
        """What the worker logged (warnings and errors)."""
        return self.log_path.read_text(errors="replace")


class SupervisedWorker:
    """A worker under a supervisor that restarts it whenever it exits (docs/celery.md,
    "Running workers"): kombu's Redis transport can end a worker when Redis restarts."""

    def __init__(self, broker: str, queue: str, pool: str, concurrency: int, pid_dir: Path) -> None:
        self._start = lambda n: WorkerProcess(
            broker, queue, pool, concurrency, pid_dir, log_name=f"worker-{n}.log"
        )
        self.workers = [self._start(0)]
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    @property
    def restarts(self) -> int:
        """How many times the worker exited and was started again."""
        return len(self.workers) - 1

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            current = self.workers[-1]
            if current.process.poll() is not None:
                current.log.close()
                self.workers.append(self._start(len(self.workers)))

    def stop(self) -> None:
        """Stop supervising, then stop the running worker."""
        self._stopping.set()
        self._watcher.join(WAIT)
        self.workers[-1].stop()

    def log_text(self) -> str:
        """What every generation of the worker logged, oldest first."""
        return "\n".join(
            f"--- worker {n} (exit {w.process.returncode}) ---\n{w.log_text()}"
            for n, w in enumerate(self.workers)
        )


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.02)
