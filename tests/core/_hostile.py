"""Helpers for the hostile-receiver and attack-URL tests: raw TCP servers and a loopback guard.

Everything here listens on, or lets Thorn connect to, 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import attrs

from thorn_core.dispatchers.default import DefaultDispatcher
from thorn_core.exceptions import DeliveryConnectionError
from thorn_core.transport import RequestsTransport, TransportResponse
from thorn_core.validators import IPAddress

#: Seconds a server waits for something that should happen at once, or hangs at most.
WAIT = 5.0

LOOPBACK = ip_address("127.0.0.1")


@attrs.frozen
class Request:
    """One HTTP request as a raw server read it: method, path, lower-case headers, body."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


def response_head(
    status: int,
    *,
    headers: Mapping[str, str] | None = None,
    content_length: int | None = 0,
    keep_alive: bool = False,
) -> bytes:
    """The status line and headers of an HTTP/1.1 answer (no ``Content-Length`` when None)."""
    lines = [f"HTTP/1.1 {status} {http.client.responses.get(status, 'Status')}"]
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Peer:
    """One accepted connection, as a handler sees it."""

    def __init__(self, server: TCPServer, sock: socket.socket, number: int) -> None:
        self.server = server
        self.sock = sock
        self.number = number
        self._reader = sock.makefile("rb")

    def read_request(self) -> Request:
        """Read one request (headers and a ``Content-Length`` body) and record it.

        Raises:
            ConnectionAbortedError: the client closed the connection first.
        """
        line = self._reader.readline(65537)
        if not line:
            raise ConnectionAbortedError("the client closed the connection")
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            header = self._reader.readline(65537).decode("latin-1").rstrip("\r\n")
            if not header:
                break
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self._reader.read(int(headers.get("content-length", "0")))
        request = Request(method=method, path=path, headers=headers, body=body)
        with self.server.lock:
            self.server.requests.append(request)
        return request

    def send(self, data: bytes) -> None:
        """Send all of ``data``."""
        self.sock.sendall(data)

    def respond(
        self,
        status: int,
        body: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        keep_alive: bool = False,
    ) -> None:
        """Send a complete answer."""
        head = response_head(
            status, headers=headers, content_length=len(body), keep_alive=keep_alive
        )
        self.send(head + body)

    def trickle(self, data: bytes, interval: float = 0.1) -> None:
        """Send ``data`` one byte every ``interval`` seconds, until the server stops."""
        for byte in data:
            if self.server.released.wait(interval):
                return
            self.send(bytes([byte]))

    def hang(self) -> None:
        """Keep the connection open and silent until the server stops."""
        self.server.released.wait(WAIT)

    def reset(self) -> None:
        """Close with a TCP reset (``SO_LINGER`` 0) instead of an orderly FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._reader.close()
        self.sock.close()


Handler = Callable[[Peer], None]


class TCPServer:
    """A threaded raw TCP server on 127.0.0.1: each connection goes to ``handler`` in a thread.

    ``connections`` counts accepted connections and ``requests`` holds what handlers read;
    :meth:`stop` sets ``released``, which ends every hanging or trickling handler.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[Request] = []
        self.errors: list[OSError] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._serve, name="tcp-server", daemon=True)
        self._acceptor.start()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._listener.getsockname()[1])

    def url(self, path: str = "/hook") -> str:
        """The URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self.released.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            thread = threading.Thread(target=self._handle, args=(sock, number), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, sock: socket.socket, number: int) -> None:
        sock.settimeout(WAIT)
        peer = Peer(self, sock, number)
        try:
            self.handler(peer)
        except OSError as exc:
            with self.lock:
                self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                peer.close()

    def join_handlers(self, timeout: float = WAIT) -> None:
        """Wait until every handler started so far has returned."""
        for thread in list(self._threads):
            thread.join(timeout)

    def stop(self) -> None:
        """Release every handler, stop accepting and close the listening socket."""
        self.released.set()
        self._acceptor.join(WAIT)
        self._listener.close()
        self.join_handlers()


class Listener:
    """A listening socket on 127.0.0.1 that never accepts: it only counts who connected."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.setblocking(False)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._sock.getsockname()[1])

    def accepted(self) -> int:
        """How many connections reached it (each is taken from the backlog and closed)."""
        count = 0
        while True:
            try:
                sock, _ = self._sock.accept()
            except BlockingIOError:
                return count
            sock.close()
            count += 1

    def close(self) -> None:
        """Stop listening."""
        self._sock.close()


@attrs.frozen
class Post:
    """One call of a transport: the URL and the validated addresses it was given."""

    url: str
    addresses: tuple[IPAddress, ...]


class LoopbackOnlyTransport(RequestsTransport):
    """The real transport, which records every post and refuses any address but 127.0.0.1.

    A safety net: if a validator let an attack URL through, the test fails on ``posts``
    instead of sending traffic off this machine.
    """

    def __init__(self, ca_bundle: str | None = None) -> None:
        super().__init__(ca_bundle=ca_bundle)
        self.posts: list[Post] = []

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float,
        max_body: int,
        addresses: Sequence[IPAddress] = (),
    ) -> TransportResponse:
        """Record the call, then post only if every address (or the host) is 127.0.0.1."""
        self.posts.append(Post(url=url, addresses=tuple(addresses)))
        targets = list(addresses) or [_literal(urlsplit(url).hostname)]
        if not all(target == LOOPBACK for target in targets):
            raise DeliveryConnectionError(f"test guard: refused to connect to {url} {targets}")
        return super().post(
            url, body, headers, timeout=timeout, max_body=max_body, addresses=addresses
        )


def _literal(host: str | None) -> Any:
    try:
        return ip_address(host or "")
    except ValueError:
        return host


class LoopbackOnlyDispatcher(DefaultDispatcher):
    """The default dispatcher over :class:`LoopbackOnlyTransport` (``THORN_DISPATCHER``)."""

    transport: LoopbackOnlyTransport

    def __init__(self, app: Any) -> None:
        super().__init__(app, transport=LoopbackOnlyTransport(ca_bundle=app.settings.ca_bundle))
