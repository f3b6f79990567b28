"""Hostile receivers on 127.0.0.1: every delivery ends on time with the right outcome.

Each receiver is a raw TCP server whose handler does what a broken or malicious webhook
endpoint might: hang, trickle bytes, reset, flood, lie about its length, redirect inward.
Every case checks the outcome and that the send took no longer than its deadline plus a
safety margin (a bound on the deadline, not a performance budget).
"""

from __future__ import annotations

import datetime
import email.utils
import gzip
import time
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from typing import Any

import pytest

from tests.core._hostile import (
    WAIT,
    Handler,
    Listener,
    LoopbackOnlyDispatcher,
    Peer,
    TCPServer,
    response_head,
)
from thorn_core import Event, Subscriber, Thorn
from thorn_core.delivery import Delivery
from thorn_core.exceptions import InvalidURL, RecipientRefused
from thorn_core.retry import RetryPolicy
from thorn_core.signals import subscriber_deactivated
from thorn_core.signing import is_valid_hook_hmac, is_valid_standard_webhook
from thorn_core.validators import (
    allow_cidr_network,
    block_internal_ips,
    ensure_port,
    ensure_protocol,
)

#: The deadline of every delivery attempt in this module, in seconds.
TIMEOUT = 0.5
#: How far past its deadline a send may end (thread scheduling, connection set-up).
SLACK = 1.5
#: What the fake resolver answers; anything else is an unknown host.
HOSTS = {"internal.test": (ip_address("10.0.0.5"),)}
SECRET = "hostile-test-secret"


def fake_resolver(host: str, port: int) -> tuple[Any, ...]:
    """Resolve the test's own names without DNS."""
    try:
        return HOSTS[host]
    except KeyError:
        raise OSError(f"unknown test host {host!r}") from None


@pytest.fixture
def tcp_server() -> Iterator[Callable[[Handler], TCPServer]]:
    """Start raw TCP servers on 127.0.0.1 with a given handler; all stopped afterwards."""
    started: list[TCPServer] = []

    def start(handler: Handler) -> TCPServer:
        server = TCPServer(handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A socket on 127.0.0.1 that only counts the connections that reach it."""
    counting = Listener()
    yield counting
    counting.close()


@pytest.fixture
def hostile_app(make_app: Callable[..., Thorn]) -> Callable[..., Thorn]:
    """Apps allowed to reach loopback (only), with a 0.5 s deadline per attempt."""

    def make(settings: dict[str, Any] | None = None, **kwargs: Any) -> Thorn:
        values = {
            "THORN_EVENT_TIMEOUT": TIMEOUT,
            "THORN_DISPATCHER": LoopbackOnlyDispatcher,
            **(settings or {}),
        }
        kwargs.setdefault("resolver", fake_resolver)
        return make_app(values, **kwargs)

    return make


def send(app: Thorn, url: str | Subscriber) -> tuple[Delivery, float]:
    """Send one event to ``url`` and return its delivery and the seconds the send took."""
    start = time.monotonic()
    (delivery,) = Event("hook.fired", app=app).send({"n": 1}, subscribers=[url]).deliveries
    return delivery, time.monotonic() - start


def posted_urls(app: Thorn) -> list[str]:
    """Every URL the app's transport was asked to post to."""
    dispatcher = app.dispatcher
    assert isinstance(dispatcher, LoopbackOnlyDispatcher)
    return [post.url for post in dispatcher.transport.posts]


class TestSlowReceivers:
    """A receiver that is slow on purpose cannot hold a delivery past its deadline."""

    def test_hangs_before_answering(self, hostile_app, tcp_server):
        """A receiver that reads the request and never answers times out at the deadline."""

        def hang(peer: Peer) -> None:
            peer.read_request()
            peer.hang()

        server = tcp_server(hang)

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert delivery.timed_out
        assert delivery.retryable
        assert delivery.status_code is None
        assert delivery.attempts == 1
        assert TIMEOUT * 0.9 <= took < TIMEOUT + SLACK

    def test_hangs_before_reading(self, hostile_app, tcp_server):
        """A receiver that accepts the connection and never reads times out as well."""
        server = tcp_server(Peer.hang)

        delivery, took = send(hostile_app(), server.url())

        assert delivery.timed_out
        assert took < TIMEOUT + SLACK

    def test_trickles_status_line_and_headers(self, hostile_app, tcp_server):
        """One header byte every 0.1 s beats any socket timeout but not the total deadline."""

        def trickle(peer: Peer) -> None:
            peer.read_request()
            peer.trickle(response_head(200, content_length=2) + b"ok")

        server = tcp_server(trickle)

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert delivery.timed_out
        assert delivery.retryable
        assert delivery.status_code is None
        assert took < TIMEOUT + SLACK

    def test_trickles_the_body(self, hostile_app, tcp_server):
        """A prompt status line followed by a body trickled byte by byte times out."""

        def trickle(peer: Peer) -> None:
            peer.read_request()
            peer.send(response_head(200, content_length=100))
            peer.trickle(b"x" * 100)

        server = tcp_server(trickle)

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert delivery.timed_out
        assert delivery.retryable
        assert took < TIMEOUT + SLACK

    def test_content_length_larger_than_the_body(self, hostile_app, tcp_server):
        """A receiver that promises 1000 bytes, sends 10 and then hangs times out."""

        def short(peer: Peer) -> None:
            peer.read_request()
            peer.send(response_head(200, content_length=1000) + b"0123456789")
            peer.hang()

        server = tcp_server(short)

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert delivery.timed_out
        assert took < TIMEOUT + SLACK

    def test_endless_interim_responses(self, hostile_app, tcp_server):
        """A stream of ``100 Continue`` interim answers never becomes a final one in time."""

        def interim(peer: Peer) -> None:
            peer.read_request()
            while not peer.server.released.wait(0.05):
                peer.send(b"HTTP/1.1 100 Continue\r\n\r\n")

        server = tcp_server(interim)

        delivery, took = send(hostile_app(), server.url())

        assert delivery.timed_out
        assert delivery.status_code is None
        assert took < TIMEOUT + SLACK

    def test_event_timeout_overrides_the_setting(self, hostile_app, tcp_server):
        """``send(timeout=)`` sets the deadline of that send's attempts."""
        server = tcp_server(Peer.hang)
        app = hostile_app({"THORN_EVENT_TIMEOUT": 30.0})

        start = time.monotonic()
        (delivery,) = (
            Event("hook.fired", app=app)
            .send({}, subscribers=[server.url()], timeout=TIMEOUT)
            .deliveries
        )

        assert delivery.timed_out
        assert time.monotonic() - start < TIMEOUT + SLACK


class TestBrokenConnections:
    """Connections that break are retryable failures, reported at once."""

    def test_reset_after_the_request(self, hostile_app, tcp_server):
        """A TCP reset instead of an answer is a retryable connection error, not a timeout."""

        def reset(peer: Peer) -> None:
            peer.read_request()
            peer.reset()

        server = tcp_server(reset)

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert delivery.retryable
        assert not delivery.timed_out
        assert delivery.status_code is None
        assert delivery.error is not None
        assert delivery.error.startswith(f"cannot reach {server.url()}")
        assert took < TIMEOUT + SLACK

    def test_closed_without_answer(self, hostile_app, tcp_server):
        """A receiver that closes the new connection without a word is a connection error."""

        def close(peer: Peer) -> None:
            peer.read_request()
            peer.close()

        server = tcp_server(close)

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert delivery.retryable
        assert not delivery.timed_out
        assert server.connections == 1
        assert took < TIMEOUT + SLACK

    def test_stale_keep_alive_connection_is_retried_once(self, hostile_app, tcp_server):
        """A pooled connection the receiver closes unanswered is retried on a new connection."""

        def keep_alive_then_drop(peer: Peer) -> None:
            if peer.number == 1:
                peer.read_request()
                peer.respond(200, b"first", keep_alive=True)
                peer.read_request()
                return  # close without answering the second request
            peer.read_request()
            peer.respond(200, b"second")

        server = tcp_server(keep_alive_then_drop)
        app = hostile_app()
        event = Event("hook.fired", app=app)

        first = event.send({"n": 1}, subscribers=[server.url()]).deliveries[0]
        start = time.monotonic()
        second = event.send({"n": 2}, subscribers=[server.url()]).deliveries[0]

        assert first.ok
        assert second.ok
        assert second.response_body == b"second"
        assert second.attempts == 1
        assert time.monotonic() - start < TIMEOUT + SLACK
        assert server.connections == 2
        dropped, retried = server.requests[1:]
        assert dropped.body == retried.body == b'{"n":2}'
        assert dropped.headers["hook-delivery"] == retried.headers["hook-delivery"]


class TestMalformedAnswers:
    """Answers that are not HTTP are retryable connection errors, reported at once."""

    @pytest.mark.parametrize(
        ("answer", "reason"),
        [
            (b"GARBAGE\r\n\r\n", "GARBAGE"),
            (b"HTTP/1.1 999999 Huge\r\nContent-Length: 0\r\n\r\n", "999999"),
            (b"HTTP/1.1 200 OK\r\n" + b"X-Flood: 1\r\n" * 200 + b"\r\n", "100 headers"),
            (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", "65536 bytes"),
        ],
        ids=["not-http", "bad-status", "too-many-headers", "header-too-long"],
    )
    def test_not_http(self, hostile_app, tcp_server, answer, reason):
        """Garbage, an impossible status or a header flood fails the attempt, retryably."""

        def malformed(peer: Peer) -> None:
            peer.read_request()
            peer.send(answer)

        server = tcp_server(malformed)

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert delivery.retryable
        assert not delivery.timed_out
        assert delivery.status_code is None
        assert reason in (delivery.error or "")
        assert took < TIMEOUT + SLACK


class TestLargeAnswers:
    """A response body is read up to ``THORN_RESPONSE_MAX_BYTES`` and no further."""

    def test_ten_megabytes_are_not_read(self, hostile_app, tcp_server):
        """A 10 MB answer keeps its status; the body is capped and the rest never read."""
        total = 10 * 1024 * 1024
        chunk = b"x" * 65536
        sent: list[int] = []

        def flood(peer: Peer) -> None:
            peer.read_request()
            peer.send(response_head(200, content_length=total))
            count = 0
            try:
                while count < total:
                    peer.send(chunk)
                    count += len(chunk)
            finally:
                sent.append(count)

        server = tcp_server(flood)

        delivery, took = send(hostile_app(), server.url())

        assert delivery.ok
        assert delivery.status_code == 200
        assert len(delivery.response_body) == 65536
        assert took < TIMEOUT + SLACK
        server.join_handlers()
        assert sent[0] < total
        assert len(server.errors) == 1

    def test_compressed_body_is_not_inflated(self, hostile_app, tcp_server):
        """A gzip bomb is kept as the compressed bytes it is; Thorn never inflates it."""
        bomb = gzip.compress(b"\0" * 10_000_000)

        def answer(peer: Peer) -> None:
            peer.read_request()
            peer.respond(200, bomb, headers={"Content-Encoding": "gzip"})

        server = tcp_server(answer)

        delivery, took = send(hostile_app(), server.url())

        assert delivery.ok
        assert delivery.response_body == bomb[:65536]
        assert took < TIMEOUT + SLACK

    def test_cap_is_a_setting(self, hostile_app, tcp_server):
        """``THORN_RESPONSE_MAX_BYTES`` sets how much of the body is kept."""

        def answer(peer: Peer) -> None:
            peer.read_request()
            peer.respond(200, b"y" * 5000)

        server = tcp_server(answer)

        delivery, took = send(hostile_app({"THORN_RESPONSE_MAX_BYTES": 100}), server.url())

        assert delivery.ok
        assert delivery.response_body == b"y" * 100
        assert took < TIMEOUT + SLACK


def redirecting(location: str, status: int = 302) -> Handler:
    """A handler that answers every request with a redirect to ``location``."""

    def redirect(peer: Peer) -> None:
        peer.read_request()
        peer.respond(status, headers={"Location": location})

    return redirect


class TestRedirects:
    """Redirects are refused by default; when allowed, every hop is validated before contact."""

    def test_not_followed_by_default(self, hostile_app, tcp_server, listener):
        """A 302 is a final failure naming THORN_ALLOW_REDIRECTS; the target is not contacted."""
        target = f"http://127.0.0.1:{listener.port}/elsewhere"
        server = tcp_server(redirecting(target))

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert not delivery.retryable
        assert delivery.status_code == 302
        assert "THORN_ALLOW_REDIRECTS" in (delivery.error or "")
        assert delivery.url == server.url()
        assert listener.accepted() == 0
        assert took < TIMEOUT + SLACK

    def test_redirect_to_cloud_metadata_is_refused(self, hostile_app, tcp_server):
        """A hop to 169.254.169.254 is refused before any connection is made."""
        metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
        server = tcp_server(redirecting(metadata))
        app = hostile_app({"THORN_ALLOW_REDIRECTS": True})

        delivery, took = send(app, server.url())

        assert not delivery.ok
        assert not delivery.retryable
        assert isinstance(delivery.exception, RecipientRefused)
        assert "169.254.169.254 is a link-local address" in (delivery.error or "")
        assert delivery.url == metadata
        assert delivery.attempts == 1
        assert posted_urls(app) == [server.url()]
        assert took < TIMEOUT + SLACK

    def test_scheme_relative_redirect_to_cloud_metadata_is_refused(self, hostile_app, tcp_server):
        """A ``//169.254.169.254/`` Location is resolved against the URL, then refused."""
        server = tcp_server(redirecting("//169.254.169.254/latest/"))
        app = hostile_app({"THORN_ALLOW_REDIRECTS": True})

        delivery, _ = send(app, server.url())

        assert not delivery.ok
        assert delivery.url == "http://169.254.169.254/latest/"
        assert "cloud metadata service" in (delivery.error or "")
        assert posted_urls(app) == [server.url()]

    def test_redirect_to_a_file_url_is_refused(self, hostile_app, tcp_server):
        """A ``file://`` Location is not a URL Thorn can deliver to."""
        server = tcp_server(redirecting("file:///etc/passwd"))
        app = hostile_app({"THORN_ALLOW_REDIRECTS": True})

        delivery, _ = send(app, server.url())

        assert not delivery.ok
        assert not delivery.retryable
        assert isinstance(delivery.exception, InvalidURL)
        assert posted_urls(app) == [server.url()]

    def test_malformed_location_is_a_final_failure(self, hostile_app, tcp_server):
        """A Location that is not a URL at all fails the delivery; ``send()`` does not raise."""
        server = tcp_server(redirecting("http://[::1"))
        app = hostile_app({"THORN_ALLOW_REDIRECTS": True})

        delivery, took = send(app, server.url())

        assert not delivery.ok
        assert not delivery.retryable
        assert delivery.attempts == 1
        assert "http://[::1" in (delivery.error or "")
        assert posted_urls(app) == [server.url()]
        assert took < TIMEOUT + SLACK

    def test_redirect_to_a_name_resolving_inside_is_refused(self, hostile_app, tcp_server):
        """A hop to a host name resolving to 10.0.0.5 is refused by the default IP checks."""
        server = tcp_server(redirecting("http://internal.test/admin"))
        app = hostile_app({"THORN_ALLOW_REDIRECTS": True})

        delivery, took = send(app, server.url())

        assert not delivery.ok
        assert "10.0.0.5 is a private address" in (delivery.error or "")
        assert delivery.url == "http://internal.test/admin"
        assert posted_urls(app) == [server.url()]
        assert took < TIMEOUT + SLACK

    def test_redirect_to_loopback_is_refused_when_not_allowed(self, hostile_app, tcp_server):
        """With only 127.0.0.1 allowed, a hop to 127.0.0.2 is refused as loopback."""
        server = tcp_server(redirecting("http://127.0.0.2/"))
        validators = (
            ensure_protocol("http"),
            block_internal_ips(),
            allow_cidr_network("127.0.0.1/32"),
        )
        app = hostile_app({"THORN_ALLOW_REDIRECTS": True, "THORN_RECIPIENT_VALIDATORS": validators})

        delivery, _ = send(app, server.url())

        assert not delivery.ok
        assert "127.0.0.2 is a loopback address" in (delivery.error or "")
        assert posted_urls(app) == [server.url()]

    def test_redirect_to_a_refused_port_is_not_contacted(self, hostile_app, tcp_server, listener):
        """Each hop passes the URL validators again: a hop to another port is never reached."""
        server = tcp_server(redirecting(f"http://127.0.0.1:{listener.port}/"))
        validators = (
            ensure_protocol("http"),
            ensure_port(server.port),
            block_internal_ips(),
            allow_cidr_network("127.0.0.0/8"),
        )
        app = hostile_app({"THORN_ALLOW_REDIRECTS": True, "THORN_RECIPIENT_VALIDATORS": validators})

        delivery, _ = send(app, server.url())

        assert not delivery.ok
        assert f"port {listener.port} is not one of {server.port}" in (delivery.error or "")
        assert listener.accepted() == 0

    @pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
    def test_followed_when_allowed(self, hostile_app, tcp_server, status):
        """An allowed redirect re-sends the same signed body and headers to the new path."""

        def moved(peer: Peer) -> None:
            request = peer.read_request()
            if request.path == "/hook":
                peer.respond(status, headers={"Location": "/moved"})
            else:
                peer.respond(200, b"thanks")

        server = tcp_server(moved)
        app = hostile_app({"THORN_ALLOW_REDIRECTS": True})
        subscriber = Subscriber(url=server.url(), hmac_secret=SECRET)

        delivery, took = send(app, subscriber)

        assert delivery.ok
        assert delivery.url == server.url("/moved")
        assert delivery.attempts == 1
        assert delivery.response_body == b"thanks"
        first, second = server.requests
        assert (first.method, first.path) == ("POST", "/hook")
        assert (second.method, second.path) == ("POST", "/moved")
        assert second.body == first.body == b'{"n":1}'
        for name in ("hook-hmac", "hook-delivery", "webhook-id", "webhook-signature"):
            assert second.headers[name] == first.headers[name]
        assert second.headers["host"] == f"127.0.0.1:{server.port}"
        assert is_valid_hook_hmac(SECRET, second.body, second.headers["hook-hmac"])
        assert is_valid_standard_webhook(SECRET, second.headers, second.body)
        assert took < TIMEOUT + SLACK

    def test_redirect_loop_stops_after_max_redirects(self, hostile_app, tcp_server):
        """A receiver redirecting to itself forever gets 1 + THORN_MAX_REDIRECTS requests."""
        server = tcp_server(redirecting("/hook"))
        app = hostile_app({"THORN_ALLOW_REDIRECTS": True})

        delivery, took = send(app, server.url())

        assert not delivery.ok
        assert not delivery.retryable
        assert delivery.status_code == 302
        assert "more than 3 redirects" in (delivery.error or "")
        assert len(server.requests) == 4
        assert took < TIMEOUT + SLACK

    def test_max_redirects_is_a_setting(self, hostile_app, tcp_server):
        """``THORN_MAX_REDIRECTS`` bounds the hops."""
        server = tcp_server(redirecting("/hook", status=307))
        app = hostile_app({"THORN_ALLOW_REDIRECTS": True, "THORN_MAX_REDIRECTS": 1})

        delivery, _ = send(app, server.url())

        assert "more than 1 redirects" in (delivery.error or "")
        assert len(server.requests) == 2

    def test_redirects_share_one_deadline(self, hostile_app, tcp_server):
        """A redirect to a hanging path times out within the first attempt's deadline."""

        def redirect_then_hang(peer: Peer) -> None:
            request = peer.read_request()
            if request.path == "/hook":
                peer.respond(307, headers={"Location": "/slow"})
            else:
                peer.hang()

        server = tcp_server(redirect_then_hang)
        app = hostile_app({"THORN_ALLOW_REDIRECTS": True})

        delivery, took = send(app, server.url())

        assert delivery.timed_out
        assert delivery.url == server.url("/slow")
        assert took < TIMEOUT + SLACK


def answering(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    """A handler that answers every request with ``status``."""

    def answer(peer: Peer) -> None:
        peer.read_request()
        peer.respond(status, body, headers=headers)

    return answer


class TestStatusCodes:
    """What each answer means for the delivery and its retries."""

    def test_server_error_then_success(self, hostile_app, tcp_server):
        """A 500 is retryable; the next send of the same subscriber succeeds."""

        def flaky(peer: Peer) -> None:
            peer.read_request()
            peer.respond(500 if peer.number == 1 else 200)

        server = tcp_server(flaky)
        app = hostile_app()

        failed, took = send(app, server.url())
        succeeded, _ = send(app, server.url())

        assert not failed.ok
        assert failed.status_code == 500
        assert failed.retryable
        assert not failed.timed_out
        assert RetryPolicy(delay=1.0).next_delay(failed) is not None
        assert succeeded.ok
        assert succeeded.status_code == 200
        assert RetryPolicy(delay=1.0).next_delay(succeeded) is None
        assert took < TIMEOUT + SLACK

    def test_too_many_requests_with_retry_after_seconds(self, hostile_app, tcp_server):
        """A 429 with ``Retry-After: 120`` is retryable after 120 seconds."""
        server = tcp_server(answering(429, headers={"Retry-After": "120"}))

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert delivery.retryable
        assert delivery.retry_after == 120.0
        assert RetryPolicy(delay=1.0).next_delay(delivery) == 120.0
        assert took < TIMEOUT + SLACK

    def test_too_many_requests_with_retry_after_date(self, hostile_app, tcp_server):
        """A 429 with an HTTP-date ``Retry-After`` waits until that date."""
        when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=90)
        server = tcp_server(
            answering(429, headers={"Retry-After": email.utils.format_datetime(when, True)})
        )

        delivery, took = send(hostile_app(), server.url())

        assert delivery.retryable
        assert delivery.retry_after is not None
        assert 85.0 <= delivery.retry_after <= 90.0
        assert took < TIMEOUT + SLACK

    def test_unparsable_retry_after_is_ignored(self, hostile_app, tcp_server):
        """A ``Retry-After`` that is neither seconds nor a date leaves ``retry_after`` None."""
        server = tcp_server(answering(503, headers={"Retry-After": "soon"}))

        delivery, _ = send(hostile_app(), server.url())

        assert delivery.retryable
        assert delivery.retry_after is None

    def test_non_ascii_digit_retry_after_is_ignored(self, hostile_app, tcp_server):
        """A ``Retry-After`` of a Latin-1 superscript digit is not a number; it is ignored."""

        def superscript(peer: Peer) -> None:
            peer.read_request()
            head = response_head(503, content_length=0)
            peer.send(head.replace(b"\r\n\r\n", b"\r\nRetry-After: \xb2\r\n\r\n"))

        server = tcp_server(superscript)

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert delivery.status_code == 503
        assert delivery.retryable
        assert delivery.retry_after is None
        assert took < TIMEOUT + SLACK

    def test_request_timeout_is_retryable(self, hostile_app, tcp_server):
        """A 408 is retryable, but it is an answer, not a timeout of Thorn's."""
        server = tcp_server(answering(408))

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert delivery.status_code == 408
        assert delivery.retryable
        assert not delivery.timed_out
        assert took < TIMEOUT + SLACK

    def test_not_found_is_final(self, hostile_app, tcp_server):
        """A 404 is a final failure: no retry is scheduled."""
        server = tcp_server(answering(404, b"no such hook"))

        delivery, took = send(hostile_app(), server.url())

        assert not delivery.ok
        assert delivery.status_code == 404
        assert not delivery.retryable
        assert not delivery.gone
        assert delivery.response_body == b"no such hook"
        assert RetryPolicy(delay=1.0).next_delay(delivery) is None
        assert took < TIMEOUT + SLACK

    def test_gone_deactivates_the_static_subscriber(self, hostile_app, tcp_server):
        """A 410 deactivates the subscriber, signals it, and the next send skips it."""
        server = tcp_server(answering(410))
        app = hostile_app({"THORN_SUBSCRIBERS": {"hook.*": server.url()}})
        event = Event("hook.fired", app=app)
        seen: list[dict[str, Any]] = []

        def on_deactivated(sender: Thorn, **kwargs: Any) -> None:
            seen.append({"sender": sender, **kwargs})

        with subscriber_deactivated.connected_to(on_deactivated, sender=app):
            start = time.monotonic()
            (delivery,) = event.send({"n": 1}).deliveries
            took = time.monotonic() - start
            again = event.send({"n": 2})

        assert not delivery.ok
        assert delivery.gone
        assert not delivery.retryable
        assert RetryPolicy(delay=1.0).next_delay(delivery) is None
        (signal,) = seen
        assert signal["sender"] is app
        assert signal["subscriber"] == delivery.subscriber
        assert signal["delivery"] is delivery
        assert "410" in signal["reason"]
        assert again.deliveries == []
        assert len(server.requests) == 1
        assert took < TIMEOUT + SLACK


class TestFanOut:
    """The default dispatcher delivers concurrently: one slow receiver delays no other."""

    def test_one_hanging_receiver_among_fast_ones(
        self, hostile_app, hanging_receiver, make_receiver
    ):
        """Five fast receivers succeed, the hanging one times out, all within one deadline."""
        fast = [make_receiver() for _ in range(5)]
        urls = [hanging_receiver.url("/slow")] + [receiver.url("/fast") for receiver in fast]
        app = hostile_app({"THORN_SUBSCRIBERS": {"hook.fired": urls}})

        start = time.monotonic()
        result = Event("hook.fired", app=app).send({"n": 1})
        took = time.monotonic() - start

        slow, *quick = result.deliveries
        assert slow.timed_out
        assert [d.ok for d in quick] == [True] * 5
        assert [d.url for d in quick] == urls[1:]
        for receiver in fast:
            assert len(receiver.wait_for(1, WAIT)) == 1
        assert took < TIMEOUT + SLACK

    def test_many_hanging_receivers_cost_one_deadline(self, hostile_app, hanging_receiver):
        """Eight hanging subscribers take about one deadline in all, not eight."""
        urls = [hanging_receiver.url(f"/slow/{n}") for n in range(8)]
        app = hostile_app({"THORN_SUBSCRIBERS": {"hook.fired": urls}})

        start = time.monotonic()
        result = Event("hook.fired", app=app).send({"n": 1})
        took = time.monotonic() - start

        assert [d.timed_out for d in result.deliveries] == [True] * 8
        assert took < TIMEOUT + SLACK < 8 * TIMEOUT
