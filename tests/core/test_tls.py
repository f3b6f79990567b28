"""TLS delivery: certificates are always verified, against THORN_CA_BUNDLE when set.

An HTTPS receiver on 127.0.0.1 holds a certificate for ``receiver.test`` from a test CA;
the injected resolver maps that name to 127.0.0.1. The receiver records the SNI and the
Host header it saw, which proves that the connection went to the pinned address while TLS
and HTTP kept the host name.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.core._hostile import LoopbackOnlyDispatcher
from thorn_core import Event, Thorn
from thorn_core.delivery import Delivery

#: Seconds a delivery may take; the receiver answers at once.
TIMEOUT = 5.0
HOSTS = {"receiver.test": "127.0.0.1", "alias.test": "127.0.0.1"}


def resolve(host: str, port: int) -> tuple[Any, ...]:
    """Resolve the test names to 127.0.0.1, without DNS."""
    try:
        return (ip_address(HOSTS[host]),)
    except KeyError:
        raise OSError(f"unknown test host {host!r}") from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TLSReceiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.hosts.append(self.headers.get("Host", ""))
            self.server.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


class TLSReceiver(ThreadingHTTPServer):
    """An HTTPS server on 127.0.0.1 that records the SNI names and Host headers it saw.

    The TLS handshake runs in the request's thread, so a client that rejects the
    certificate does not stall the server.
    """

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.server_names: list[str | None] = []
        self.hosts: list[str] = []
        self.bodies: list[bytes] = []
        self.handshake_errors: list[OSError] = []
        context.sni_callback = self._sni
        self.context = context
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _sni(self, _sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        with self.lock:
            self.server_names.append(name)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self.server_address[1])

    def url(self, host: str = "receiver.test", path: str = "/hook") -> str:
        """The HTTPS URL of ``path`` on this server, under ``host``."""
        return f"https://{host}:{self.port}{path}"

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Do the handshake in this request's thread, then serve the request."""
        request.settimeout(TIMEOUT)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError as exc:
            with self.lock:
                self.handshake_errors.append(exc)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.shutdown()
        self._thread.join()
        self.server_close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """The test certificate authority."""
    return trustme.CA()


@pytest.fixture
def ca_bundle(ca: trustme.CA, tmp_path: Path) -> str:
    """The test CA's certificate as a PEM file, for THORN_CA_BUNDLE."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls_receiver(ca: trustme.CA) -> Iterator[Callable[..., TLSReceiver]]:
    """Start HTTPS receivers with a certificate for the given names; all stopped afterwards."""
    started: list[TLSReceiver] = []

    def start(*names: str) -> TLSReceiver:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*(names or ("receiver.test",))).configure_cert(context)
        receiver = TLSReceiver(context)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def tls_app(make_app: Callable[..., Thorn]) -> Callable[..., Thorn]:
    """Apps allowed to reach loopback, resolving the test names to 127.0.0.1."""

    def make(settings: dict[str, Any] | None = None) -> Thorn:
        values = {
            "THORN_EVENT_TIMEOUT": TIMEOUT,
            "THORN_DISPATCHER": LoopbackOnlyDispatcher,
            **(settings or {}),
        }
        return make_app(values, resolver=resolve)

    return make


def send(app: Thorn, url: str) -> Delivery:
    """Send one event to ``url`` and return its delivery."""
    (delivery,) = Event("hook.fired", app=app).send({"n": 1}, subscribers=[url]).deliveries
    return delivery


class TestVerifiedDelivery:
    """With the test CA trusted, a delivery by host name succeeds over TLS."""

    def test_sni_and_host_keep_the_name(self, tls_app, tls_receiver, ca_bundle):
        """The connection goes to 127.0.0.1 while SNI and Host name ``receiver.test``."""
        receiver = tls_receiver("receiver.test")
        app = tls_app({"THORN_CA_BUNDLE": ca_bundle})

        delivery = send(app, receiver.url())

        assert delivery.ok, delivery.error
        assert delivery.status_code == 200
        assert delivery.response_body == b"ok"
        assert receiver.server_names == ["receiver.test"]
        assert receiver.hosts == [f"receiver.test:{receiver.port}"]
        assert receiver.bodies == [b'{"n":1}']
        (post,) = app.dispatcher.transport.posts
        assert post.addresses == (ip_address("127.0.0.1"),)

    def test_connection_is_reused_per_name(self, tls_app, tls_receiver, ca_bundle):
        """Two sends to one HTTPS receiver share one TLS connection (one handshake)."""
        receiver = tls_receiver("receiver.test")
        app = tls_app({"THORN_CA_BUNDLE": ca_bundle})

        first = send(app, receiver.url())
        second = send(app, receiver.url())

        assert first.ok
        assert second.ok
        assert receiver.server_names == ["receiver.test"]
        assert len(receiver.hosts) == 2

    def test_each_name_is_verified_on_its_own(self, tls_app, tls_receiver, ca_bundle):
        """A second name on the same address gets its own handshake and SNI."""
        receiver = tls_receiver("receiver.test", "alias.test")
        app = tls_app({"THORN_CA_BUNDLE": ca_bundle})

        assert send(app, receiver.url("receiver.test")).ok
        assert send(app, receiver.url("alias.test")).ok

        assert receiver.server_names == ["receiver.test", "alias.test"]
        assert receiver.hosts == [f"receiver.test:{receiver.port}", f"alias.test:{receiver.port}"]


class TestVerificationFailures:
    """Verification is always on: an untrusted or mismatched certificate fails the delivery."""

    def test_unknown_ca_fails_without_ca_bundle(self, tls_app, tls_receiver):
        """Without THORN_CA_BUNDLE the test CA is not trusted and nothing is posted."""
        receiver = tls_receiver("receiver.test")

        delivery = send(tls_app(), receiver.url())

        assert not delivery.ok
        assert delivery.retryable
        assert not delivery.timed_out
        assert "certificate verify failed" in (delivery.error or "")
        assert receiver.bodies == []

    def test_certificate_for_another_name_fails(self, tls_app, tls_receiver, ca_bundle):
        """A trusted certificate for ``other.test`` does not vouch for ``receiver.test``."""
        receiver = tls_receiver("other.test")

        delivery = send(tls_app({"THORN_CA_BUNDLE": ca_bundle}), receiver.url())

        assert not delivery.ok
        assert "certificate verify failed" in (delivery.error or "")
        assert "receiver.test" in (delivery.error or "")
        assert receiver.server_names == ["receiver.test"]
        assert receiver.bodies == []

    def test_address_literal_is_not_the_certificate_name(self, tls_app, tls_receiver, ca_bundle):
        """Sending to ``https://127.0.0.1`` fails: the certificate names receiver.test only."""
        receiver = tls_receiver("receiver.test")
        url = f"https://127.0.0.1:{receiver.port}/hook"

        delivery = send(tls_app({"THORN_CA_BUNDLE": ca_bundle}), url)

        assert not delivery.ok
        assert "certificate verify failed" in (delivery.error or "")
        assert receiver.bodies == []

    def test_plain_http_server_is_not_tls(self, tls_app, ca_bundle):
        """An https URL answered by a server that does not speak TLS is a connection error."""
        with socket.create_server(("127.0.0.1", 0)) as plain:
            port = plain.getsockname()[1]

            def answer() -> None:
                sock, _ = plain.accept()
                with sock:
                    sock.recv(1024)
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

            thread = threading.Thread(target=answer, daemon=True)
            thread.start()

            delivery = send(
                tls_app({"THORN_CA_BUNDLE": ca_bundle}), f"https://receiver.test:{port}/"
            )
            thread.join(TIMEOUT)

        assert not delivery.ok
        assert delivery.retryable
        assert delivery.status_code is None
