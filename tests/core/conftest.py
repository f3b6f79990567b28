"""Core fixtures: loopback opt-in, explicit apps, and real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from thorn_core import Thorn, testing
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver

#: Seconds a test waits for something that should happen at once.
WAIT = 5.0


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """Make pytest-httpserver listen on 127.0.0.1 (not ``localhost``, which may also be ::1)."""
    return ("127.0.0.1", 0)


@pytest.fixture
def loopback_validators() -> tuple[Any, ...]:
    """Recipient validators that keep the safety checks but allow loopback, for tests."""
    return testing.loopback_validators()


@pytest.fixture
def make_app(loopback_validators: tuple[Any, ...]) -> Iterator[Callable[..., Thorn]]:
    """Build explicit (not current) apps that may deliver to loopback; all closed afterwards."""
    apps: list[Thorn] = []

    def make(settings: Mapping[str, Any] | None = None, **kwargs: Any) -> Thorn:
        values = {"THORN_RECIPIENT_VALIDATORS": loopback_validators, **(settings or {})}
        kwargs.setdefault("set_as_current", False)
        app = Thorn(values, **kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: Callable[..., Thorn]) -> Thorn:
    """An explicit app allowed to deliver to loopback, with no static subscribers."""
    return make_app()


@pytest.fixture
def hanging_receiver() -> Iterator[WebhookReceiver]:
    """A receiver that does not answer until the test ends (or 5 seconds pass)."""
    release = threading.Event()

    def hang(_request: ReceivedWebhook) -> Reply:
        release.wait(WAIT)
        return 200, b"too late"

    running = WebhookReceiver(respond=hang).start()
    try:
        yield running
    finally:
        release.set()
        running.stop()


class RawServer:
    """A threaded HTTP/1.1 server whose handler class the test writes; records client ports."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.client_ports: list[int] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        """The URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[type[BaseHTTPRequestHandler]], RawServer]]:
    """Start :class:`RawServer` instances with a given handler class; all stopped afterwards."""
    started: list[RawServer] = []

    def start(handler: type[BaseHTTPRequestHandler]) -> RawServer:
        server = RawServer(handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL on a port nobody listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
