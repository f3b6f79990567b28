"""A real webhook receiver on loopback, for the demo, ``thorn listen`` and tests.

It records every POST, answers what its ``respond`` callable says (200 by default), and
checks signatures with the same helpers a production receiver would use.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

from .signing import is_valid_hook_hmac, is_valid_standard_webhook

__all__ = ["ReceivedWebhook", "Reply", "WebhookReceiver"]

Reply = tuple[int, bytes]


@attrs.frozen
class ReceivedWebhook:
    """One request as the receiver saw it: path, headers (lower-case names) and raw body."""

    path: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def event(self) -> str | None:
        """The ``Hook-Event`` header."""
        return self.headers.get("hook-event")

    @property
    def delivery_id(self) -> str | None:
        """The ``Hook-Delivery`` header, the same on every retry of one delivery."""
        return self.headers.get("hook-delivery")

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    def hook_hmac_valid(self, secret: str, digest_method: str = "sha256") -> bool:
        """Whether ``Hook-HMAC`` matches the body for ``secret``."""
        return is_valid_hook_hmac(
            secret, self.body, self.headers.get("hook-hmac", ""), digest_method
        )

    def standard_webhook_valid(self, secret: str, *, tolerance: float = 300.0) -> bool:
        """Whether the Standard Webhooks headers verify for ``secret``."""
        return is_valid_standard_webhook(secret, self.headers, self.body, tolerance=tolerance)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        received = ReceivedWebhook(
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        status, reply = self.server.owner._record(received)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; the owner records requests."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: WebhookReceiver


class WebhookReceiver:
    """A threaded HTTP/1.1 receiver (keep-alive) on ``host``; use it as a context manager.

    Args:
        host: loopback by default; the receiver is for local development and tests.
        port: 0 picks a free port.
        respond: called with each request; returns ``(status, body)``. 200 ``ok`` by default.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        respond: Callable[[ReceivedWebhook], Reply] | None = None,
    ) -> None:
        self.respond = respond or (lambda _request: (200, b"ok"))
        self.received: list[ReceivedWebhook] = []
        self._condition = threading.Condition()
        self._server = _Server((host, port), _Handler)
        self._server.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the receiver listens on."""
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        """The URL of ``path`` on this receiver."""
        host = str(self._server.server_address[0])
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{path}"

    def _record(self, received: ReceivedWebhook) -> Reply:
        reply = self.respond(received)
        with self._condition:
            self.received.append(received)
            self._condition.notify_all()
        return reply

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedWebhook]:
        """Wait until ``count`` requests have arrived; return them all.

        Raises:
            TimeoutError: fewer arrived within ``timeout`` seconds.
        """
        with self._condition:
            if not self._condition.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(f"expected {count} webhooks, got {len(self.received)}")
            return list(self.received)

    def start(self) -> WebhookReceiver:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="thorn-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
