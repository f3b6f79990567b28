"""Celery fixtures: real brokers (Redis, RabbitMQ), real workers, a port-recording server.

Every test that takes ``broker`` runs once per real broker. A broker that cannot be reached
skips its tests with the reason, or fails them when ``CI=true``. Celery's in-memory broker
is used only when neither real broker is reachable (and never in CI); tests that need a
worker in another process skip on it.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery", reason="the Celery tests need celery (pip install '.[test]')")

from celery import Celery
from celery.contrib.testing.worker import start_worker

from thorn_core import Thorn

from ._celery_support import (
    BROKERS,
    IN_CI,
    LOOPBACK_VALIDATORS,
    WAIT,
    PortServer,
    WorkerProcess,
    delete_queue,
    reachable,
)


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

    @contextlib.contextmanager
    def run(concurrency: int = 4) -> Iterator[Any]:
        with start_worker(
            celery_app,
            pool="threads",
            concurrency=concurrency,
            perform_ping_check=False,
            queues=[queue],
            shutdown_timeout=WAIT,
        ) as worker:
            # The event loop notices the stop request only when its poll returns, which an
            # idle AMQP connection delays by up to 10 s; a short timer keeps the poll short.
            if worker.hub is not None:
                worker.hub.call_repeatedly(0.1, lambda: None)
            yield worker

    return run


@pytest.fixture
def port_server() -> Iterator[PortServer]:
    """A receiver that records the client port of every request (one port per connection)."""
    server = PortServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.fixture
def worker_process(
    broker: str, queue: str, celery_app: Celery, tmp_path: Path
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
