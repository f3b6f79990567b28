"""One subscriber's problem never stops the others, and bad input fails at the call site."""

from __future__ import annotations

import base64
import gc
import threading
import time

import pytest

from thorn_core import Event, InvalidSubscriber, SerializationError, Subscriber, buffer_events
from thorn_core.codecs import JSONCodec
from thorn_core.fanout import plan_deliveries
from thorn_core.signals import subscriber_deactivated
from thorn_core.transport import DeadlineWatchdog, RequestsTransport, _Attempt
from thorn_core.verification import verify_request

SECRET = "whsec_" + base64.b64encode(b"robustness-secret-012345").decode()


class CountingCodec:
    """A JSON codec that counts how often it encodes."""

    content_type = "application/json"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, data: object) -> bytes:
        """Encode with Thorn's JSON codec, counting the call."""
        self.calls += 1
        return JSONCodec().encode(data)


class TestOneSubscriberFails:
    """A failure tied to one subscriber is recorded on its delivery only."""

    def test_unusable_secret_is_refused_when_the_subscriber_is_made(self):
        """A whsec_ secret that is not base64 is an InvalidSubscriber, not a later failure."""
        with pytest.raises(InvalidSubscriber, match="hmac_secret"):
            Subscriber(url="https://example.com/", hmac_secret="whsec_not*base64")

    def test_failing_signer_fails_one_delivery(self, make_app, receiver):
        """A custom signer that raises for one secret fails that delivery; the other arrives."""

        def picky_signer(digest: str, secret: str | bytes, body: bytes) -> str:
            if secret == "reject-me":
                raise RuntimeError("cannot sign with this key")
            from thorn_core.signing import hook_hmac

            return hook_hmac(digest, secret, body)

        app = make_app(
            {
                "THORN_HMAC_SIGNER": picky_signer,
                "THORN_SUBSCRIBERS": {
                    "*": [
                        {"url": receiver.url("/bad"), "hmac_secret": "reject-me"},
                        {"url": receiver.url("/good"), "hmac_secret": SECRET},
                    ]
                },
            }
        )
        bad, good = Event("user.created", app=app).send({"id": 1}).deliveries
        assert not bad.ok
        assert "cannot sign" in (bad.error or "")
        assert bad.attempts == 0
        assert good.ok
        assert [w.path for w in receiver.received] == ["/good"]

    def test_failing_deactivation_does_not_break_send(self, make_app, receiver, make_receiver):
        """A store that cannot deactivate on 410 is logged; the send still returns its result."""
        gone = make_receiver(respond=lambda _request: (410, b"gone"))

        class BrokenStore:
            def matching(self, event, sender=None, context=None):
                return [Subscriber(url=gone.url(), event="*")]

            def deactivate(self, subscriber, reason):
                raise RuntimeError("database is down")

        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})
        app.add_subscriber_source(BrokenStore())
        result = Event("user.created", app=app).send({"id": 1})
        assert sorted(d.status_code for d in result.deliveries) == [200, 410]

    def test_deactivation_signal_only_when_deactivated(self, make_app, make_receiver):
        """A per-send subscriber answering 410 is not held by any store: no signal fires."""
        gone = make_receiver(respond=lambda _request: (410, b"gone"))
        app = make_app()
        seen: list[object] = []

        def receiver_(sender, **kwargs):
            seen.append(kwargs["subscriber"])

        subscriber_deactivated.connect(receiver_, sender=app)
        try:
            result = Event("user.created", app=app).send({}, subscribers=[gone.url()])
        finally:
            subscriber_deactivated.disconnect(receiver_, sender=app)
        assert result.deliveries[0].gone
        assert seen == []


class TestCallSiteChecks:
    """Malformed headers and options raise where they are given."""

    @pytest.mark.parametrize(
        ("headers", "message"),
        [
            ({"Hook-Event": "forged"}, "set by Thorn"),
            ({"content-type": "text/plain"}, "set by Thorn"),
            ({"webhook-id": "x"}, "set by Thorn"),
            ({"X-Bad": "a\r\nInjected: yes"}, "line break"),
            ({"Bad Name": "x"}, "not a valid header name"),
        ],
    )
    def test_bad_extra_headers(self, make_app, headers, message):
        """Reserved, malformed or injecting headers are refused before anything is sent."""
        event = Event("user.created", app=make_app())
        with pytest.raises(ValueError, match=message):
            event.send({}, headers=headers)
        with pytest.raises(ValueError, match=message):
            Event("user.created", headers=headers)

    def test_send_headers_override_event_headers_without_case(self, make_app, receiver):
        """A send header replaces the event's header of the same name, whatever its case."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})
        Event("user.created", app=app, headers={"X-Tenant": "a"}).send(
            {}, headers={"x-tenant": "b"}
        )
        got = receiver.wait_for(1)[0]
        assert got.headers["x-tenant"] == "b"

    @pytest.mark.parametrize(
        ("options", "name"),
        [
            ({"timeout": "5"}, "timeout"),
            ({"timeout": -1}, "timeout"),
            ({"timeout": 0}, "timeout"),
            ({"retry": 1}, "retry"),
            ({"retry_max": 2.5}, "retry_max"),
            ({"retry_delay": -3}, "retry_delay"),
        ],
    )
    def test_bad_event_options(self, options, name):
        """An option of the wrong kind raises TypeError naming it."""
        with pytest.raises(TypeError, match=name):
            Event("user.created", **options)

    def test_bad_send_timeout(self, make_app):
        """send(timeout=0) is refused rather than silently replaced by the default."""
        with pytest.raises(TypeError, match="timeout"):
            Event("user.created", app=make_app()).send({}, timeout=0)

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
    def test_nan_and_infinity_are_refused(self, make_app, receiver, value):
        """NaN and Infinity have no JSON form: refused with or without subscribers."""
        app = make_app({"THORN_SUBSCRIBERS": {"user.*": receiver.url()}})
        for name in ("user.created", "order.created"):
            with pytest.raises(SerializationError, match="NaN"):
                Event(name, app=app).send({"x": value})
        assert receiver.received == []


class TestEncodeOnce:
    """The payload is encoded once per content type, not once per subscriber."""

    def test_one_encode_for_many_subscribers(self, make_app, receiver):
        """Five JSON subscribers cost one encode."""
        codec = CountingCodec()
        urls = [receiver.url(f"/{i}") for i in range(5)]
        app = make_app({"THORN_CODECS": {"application/json": codec}})
        result = Event("user.created", app=app).send({"id": 1}, subscribers=urls)
        assert [d.ok for d in result.deliveries] == [True] * 5
        assert codec.calls == 1


class TestSecretsInURLs:
    """Credentials in a subscriber URL are used for Basic auth and never shown."""

    def test_password_is_masked_and_sent_as_basic_auth(self, make_app, receiver, closed_port_url):
        """The receiver gets an Authorization header; errors and reprs mask the password."""
        port = receiver.port
        url = f"http://ada:hunter2@127.0.0.1:{port}/hook"
        app = make_app()
        (delivery,) = Event("user.created", app=app).send({}, subscribers=[url]).deliveries
        assert delivery.ok
        expected = "Basic " + base64.b64encode(b"ada:hunter2").decode()
        assert receiver.wait_for(1)[0].headers["authorization"] == expected
        assert "hunter2" not in repr(delivery.subscriber)

        refused_url = closed_port_url.replace("http://", "http://ada:hunter2@")
        (failed,) = Event("user.created", app=app).send({}, subscribers=[refused_url]).deliveries
        assert not failed.ok
        assert "hunter2" not in (failed.error or "")


class TestBufferedSignatures:
    """Events held in a buffer are signed again when they go out, if the signature aged."""

    def test_stale_plan_is_signed_again(self, make_app, receiver, monkeypatch):
        """A plan signed long ago gets a fresh webhook-timestamp and keeps its delivery id."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": {"url": receiver.url(), "hmac_secret": SECRET}}})
        with buffer_events(app=app) as buffer:
            result = Event("user.created", app=app).send({"id": 1})
            plan = result.prepared
            result.prepared = type(plan)(plan.requests, plan.failed, plan.signed_at - 3600)
            assert buffer.pending == [result]
        got = receiver.wait_for(1)[0]
        verify_request(got.headers, got.body, SECRET)  # a stale timestamp would raise
        assert got.headers["hook-delivery"] == plan.requests[0].id
        assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60


class TestThreads:
    """Threads and sessions are bounded and released."""

    def test_sessions_of_finished_threads_are_closed(self, make_app, receiver):
        """Each short-lived calling thread's session is forgotten when the thread ends."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})
        event = Event("user.created", app=app)
        for _ in range(20):
            thread = threading.Thread(target=event.send, args=({},))
            thread.start()
            thread.join()
        gc.collect()
        transport = app.dispatcher.transport
        assert isinstance(transport, RequestsTransport)
        assert len(transport._sessions) <= 1
        assert len(receiver.wait_for(20)) == 20

    def test_watchdog_close_while_adding_does_not_hang(self):
        """close() returns even while other threads keep adding attempts."""
        watchdog = DeadlineWatchdog()
        stop = threading.Event()

        def add_forever() -> None:
            while not stop.is_set():
                attempt = _Attempt(time.monotonic() + 60, ())
                watchdog.add(attempt)
                attempt.done = True

        adders = [threading.Thread(target=add_forever) for _ in range(3)]
        for adder in adders:
            adder.start()
        try:
            for _ in range(50):
                closer = threading.Thread(target=watchdog.close)
                closer.start()
                closer.join(5)
                assert not closer.is_alive(), "DeadlineWatchdog.close() hung"
        finally:
            stop.set()
            for adder in adders:
                adder.join()
            watchdog.close()

    def test_plan_keeps_sign_time(self, make_app, receiver):
        """A fresh plan is sent as it is (no needless signing)."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})
        message = Event("user.created", app=app).prepare({}, app=app)
        plan = plan_deliveries(app, message)
        assert plan.requests
        assert plan.fresh(app, message) is plan
