"""Event.send against real receivers on 127.0.0.1: bodies, headers, routing and failures."""

from __future__ import annotations

import base64
import datetime
import decimal
import ipaddress
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler

import pytest
from standardwebhooks.webhooks import Webhook

import thorn_core
from thorn_core import (
    Event,
    InvalidEventName,
    SerializationError,
    Subscriber,
    Thorn,
)
from thorn_core.exceptions import DeliveryTimeout
from thorn_core.signing import DIGESTS, verify_hook_hmac
from thorn_core.validators import ensure_port

#: Seconds to wait for something that should happen at once.
WAIT = 5.0


class User:
    """A stand-in for an ORM user: only its primary key matters to Thorn."""

    def __init__(self, pk: int) -> None:
        self.pk = pk


def subscriber(url: str, event: str = "*", **fields: object) -> dict[str, object]:
    """A subscriber dict as THORN_SUBSCRIBERS accepts it."""
    return {"url": url, "event": event, **fields}


class TestBody:
    """What the receiver gets as the request body."""

    def test_json_body_is_compact_utf8(self, make_app, receiver):
        """A JSON subscriber receives the payload as compact UTF-8 JSON, byte for byte."""
        app = make_app({"THORN_SUBSCRIBERS": {"user.created": receiver.url("/hook")}})
        data = {"id": 7, "name": "Zoë", "tags": ["a", "b"], "nested": {"ok": True, "none": None}}

        result = Event("user.created", app=app).send(data)

        assert result.ok
        (received,) = receiver.wait_for(1, WAIT)
        assert received.path == "/hook"
        assert received.body == json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        assert received.json() == data

    def test_json_body_converts_dates_decimals_and_uuids(self, make_app, receiver):
        """Datetimes, Decimals and UUIDs in the payload arrive as strings."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})
        ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
        when = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)

        Event("order.paid", app=app).send(
            {"at": when, "total": decimal.Decimal("9.90"), "id": ident}
        )

        (received,) = receiver.wait_for(1, WAIT)
        assert received.json() == {
            "at": "2024-05-01T12:30:00+00:00",
            "total": "9.90",
            "id": str(ident),
        }

    def test_form_subscriber_gets_form_body(self, make_app, receiver):
        """A subscriber with the form content type gets an urlencoded body, others get JSON."""
        form = subscriber(receiver.url("/form"), content_type="application/x-www-form-urlencoded")
        app = make_app({"THORN_SUBSCRIBERS": {"*": [form, receiver.url("/json")]}})

        result = Event("user.created", app=app).send({"name": "a b", "n": 1, "ok": True})

        assert result.ok
        by_path = {r.path: r for r in receiver.wait_for(2, WAIT)}
        assert by_path["/form"].body == b"name=a+b&n=1&ok=true"
        assert by_path["/form"].headers["content-type"] == "application/x-www-form-urlencoded"
        assert by_path["/json"].body == b'{"name":"a b","n":1,"ok":true}'
        assert by_path["/json"].headers["content-type"] == "application/json"


class TestHeaders:
    """The headers on every delivery, checked the way a receiver would check them."""

    def test_thorn_headers(self, make_app, receiver):
        """Hook-Event, Hook-Subscription, User-Agent and Content-Type name the event and sender."""
        sub = Subscriber(url=receiver.url(), event="user.*")
        app = make_app({"THORN_SUBSCRIBERS": {"user.*": sub}})

        Event("user.created", app=app).send({"id": 1})

        (received,) = receiver.wait_for(1, WAIT)
        assert received.event == "user.created"
        assert received.headers["hook-subscription"] == str(sub.uuid)
        assert received.headers["user-agent"] == f"thorn-webhooks/{thorn_core.__version__}"
        assert received.headers["content-type"] == "application/json"

    def test_delivery_ids_are_unique_and_match_webhook_id(self, make_app, receiver):
        """Each delivery has its own Hook-Delivery id, equal to its webhook-id and result id."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": [receiver.url(f"/{i}") for i in range(3)]}})
        event = Event("user.created", app=app)

        results = [event.send({"n": n}) for n in range(2)]

        received = receiver.wait_for(6, WAIT)
        ids = [r.delivery_id for r in received]
        assert len(set(ids)) == 6
        assert all(r.headers["webhook-id"] == r.delivery_id for r in received)
        assert {d.id for result in results for d in result.deliveries} == set(ids)

    def test_hook_hmac_verifies_with_the_subscription_secret(self, make_app, receiver):
        """Hook-HMAC verifies against the raw body with the subscriber's secret."""
        app = make_app(
            {"THORN_SUBSCRIBERS": {"*": subscriber(receiver.url(), hmac_secret="s3cret")}}
        )

        Event("user.created", app=app).send({"id": 1})

        (received,) = receiver.wait_for(1, WAIT)
        verify_hook_hmac("s3cret", received.body, received.headers["hook-hmac"])
        assert received.hook_hmac_valid("s3cret")
        assert not received.hook_hmac_valid("other")

    @pytest.mark.parametrize("digest", sorted(DIGESTS))
    def test_hook_hmac_uses_the_subscription_digest(self, make_app, receiver, digest):
        """The subscriber's hmac_digest decides the Hook-HMAC algorithm."""
        sub = subscriber(receiver.url(), hmac_secret="s3cret", hmac_digest=digest)
        app = make_app({"THORN_SUBSCRIBERS": {"*": sub}})

        Event("user.created", app=app).send({"id": 1})

        (received,) = receiver.wait_for(1, WAIT)
        verify_hook_hmac("s3cret", received.body, received.headers["hook-hmac"], digest)
        assert (
            len(base64.b64decode(received.headers["hook-hmac"]))
            == {
                "sha1": 20,
                "sha224": 28,
                "sha256": 32,
                "sha384": 48,
                "sha512": 64,
            }[digest]
        )

    def test_standard_webhooks_with_whsec_secret(self, make_app, receiver):
        """A whsec_ secret is passed as is to the standardwebhooks library, which verifies."""
        sub = Subscriber(url=receiver.url())
        assert sub.hmac_secret.startswith("whsec_")
        app = make_app({"THORN_SUBSCRIBERS": {"*": sub}})

        Event("user.created", app=app).send({"id": 1})

        (received,) = receiver.wait_for(1, WAIT)
        assert Webhook(sub.hmac_secret).verify(received.body, dict(received.headers)) == {"id": 1}

    def test_standard_webhooks_with_plain_secret(self, make_app, receiver):
        """A plain secret verifies with standardwebhooks when given as base64 of the secret."""
        app = make_app(
            {"THORN_SUBSCRIBERS": {"*": subscriber(receiver.url(), hmac_secret="plain")}}
        )

        Event("user.created", app=app).send({"id": 1})

        (received,) = receiver.wait_for(1, WAIT)
        key = base64.b64encode(b"plain").decode()
        assert Webhook(key).verify(received.body, dict(received.headers)) == {"id": 1}
        assert received.standard_webhook_valid("plain")

    def test_extra_headers_per_event_and_per_send(self, make_app, receiver):
        """Event headers go on every delivery; send() headers add to them and win on a clash."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})
        event = Event("user.created", app=app, headers={"X-Tenant": "acme", "X-Source": "event"})

        event.send({"id": 1}, headers={"X-Source": "send", "X-Request-Id": "r-1"})
        event.send({"id": 2})

        first, second = receiver.wait_for(2, WAIT)
        assert first.headers["x-tenant"] == "acme"
        assert first.headers["x-source"] == "send"
        assert first.headers["x-request-id"] == "r-1"
        assert second.headers["x-source"] == "event"
        assert "x-request-id" not in second.headers

    def test_headers_via_pytest_httpserver(self, make_app, httpserver):
        """A third-party server (pytest-httpserver) receives the same signed request."""
        httpserver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
        sub = Subscriber(url=httpserver.url_for("/hook"), hmac_secret="s3cret")
        app = make_app({"THORN_SUBSCRIBERS": {"user.created": sub}})

        result = Event("user.created", app=app).send({"id": 1})

        httpserver.check_assertions()
        assert result.ok
        ((request, _response),) = httpserver.log
        body = request.get_data()
        assert body == b'{"id":1}'
        assert request.headers["Hook-Event"] == "user.created"
        assert request.headers["Hook-Subscription"] == str(sub.uuid)
        assert request.headers["Hook-Delivery"] == result.deliveries[0].id
        verify_hook_hmac("s3cret", body, request.headers["Hook-HMAC"])
        key = base64.b64encode(b"s3cret").decode()
        Webhook(key).verify(body, dict(request.headers))


class TestRouting:
    """Which subscribers get which events."""

    def test_wildcard_patterns(self, make_app, receiver):
        """``user.*``, ``*.created`` and ``*`` each receive exactly the events they match."""
        app = make_app(
            {
                "THORN_SUBSCRIBERS": {
                    "user.*": receiver.url("/user-any"),
                    "*.created": receiver.url("/any-created"),
                    "*": receiver.url("/all"),
                    "user.created": receiver.url("/exact"),
                }
            }
        )

        Event("user.created", app=app).send({})
        Event("user.deleted", app=app).send({})
        Event("order.created", app=app).send({})
        Event("order.paid", app=app).send({})

        got: dict[str, set[str]] = {}
        for request in receiver.wait_for(9, WAIT):
            got.setdefault(request.path, set()).add(request.event or "")
        assert got == {
            "/user-any": {"user.created", "user.deleted"},
            "/any-created": {"user.created", "order.created"},
            "/all": {"user.created", "user.deleted", "order.created", "order.paid"},
            "/exact": {"user.created"},
        }
        assert len(receiver.received) == 9

    def test_patterns_route_among_several_receivers(self, make_app, make_receiver):
        """Subscribers on different receivers each get only their pattern's events."""
        users, orders = make_receiver(), make_receiver()
        app = make_app({"THORN_SUBSCRIBERS": {"user.*": users.url(), "order.*": orders.url()}})

        Event("user.created", app=app).send({})
        Event("order.created", app=app).send({})

        assert [r.event for r in users.wait_for(1, WAIT)] == ["user.created"]
        assert [r.event for r in orders.wait_for(1, WAIT)] == ["order.created"]

    @pytest.mark.parametrize("sender", [42, "42", User(42)], ids=["int", "str", "object-pk"])
    def test_owned_subscriber_gets_only_its_users_events(self, make_app, receiver, sender):
        """A subscriber with ``user=`` gets events sent by that user (id or object with pk)."""
        app = make_app(
            {
                "THORN_SUBSCRIBERS": {
                    "*": [
                        subscriber(receiver.url("/owned"), user=42),
                        receiver.url("/everyone"),
                    ]
                }
            }
        )
        event = Event("user.created", app=app)

        event.send({"n": "other"}, sender=User(7))
        event.send({"n": "none"})
        event.send({"n": "mine"}, sender=sender)

        received = receiver.wait_for(4, WAIT)
        owned = [r.json()["n"] for r in received if r.path == "/owned"]
        assert owned == ["mine"]
        assert sorted(r.json()["n"] for r in received if r.path == "/everyone") == [
            "mine",
            "none",
            "other",
        ]

    def test_inactive_subscriber_gets_nothing(self, make_app, receiver):
        """An inactive subscriber is skipped; the active one still receives."""
        app = make_app(
            {
                "THORN_SUBSCRIBERS": {
                    "*": [subscriber(receiver.url("/off"), active=False), receiver.url("/on")]
                }
            }
        )

        result = Event("user.created", app=app).send({})

        assert [d.subscriber.url for d in result.deliveries] == [receiver.url("/on")]
        assert [r.path for r in receiver.wait_for(1, WAIT)] == ["/on"]
        assert len(receiver.received) == 1

    def test_event_subscribers(self, app, receiver):
        """Subscribers given to the Event receive every send of it."""
        event = Event("user.created", app=app, subscribers=[receiver.url("/a"), receiver.url("/b")])

        result = event.send({})

        assert len(result.deliveries) == 2
        assert sorted(r.path for r in receiver.wait_for(2, WAIT)) == ["/a", "/b"]

    def test_send_subscribers(self, app, receiver):
        """Subscribers given to send() receive that send only, on top of the event's own."""
        event = Event("user.created", app=app, subscribers=receiver.url("/event"))

        event.send({"n": 1}, subscribers=[receiver.url("/once")])
        event.send({"n": 2})

        received = receiver.wait_for(3, WAIT)
        assert sorted((r.path, r.json()["n"]) for r in received) == [
            ("/event", 1),
            ("/event", 2),
            ("/once", 1),
        ]

    def test_callable_subscribers_get_event_sender_and_context(self, make_app, receiver):
        """A callable THORN_SUBSCRIBERS value is called with (event, sender=..., **context)."""
        calls: list[tuple[str, object, dict[str, object]]] = []

        def subscribers_for(event: str, sender: object = None, **context: object) -> list[str]:
            calls.append((event, sender, context))
            return [receiver.url(f"/tenant/{context['tenant']}")]

        app = make_app({"THORN_SUBSCRIBERS": {"user.*": subscribers_for}})

        result = Event("user.created", app=app).send({}, sender=5, context={"tenant": "acme"})

        assert result.ok
        assert calls == [("user.created", 5, {"tenant": "acme"})]
        assert [r.path for r in receiver.wait_for(1, WAIT)] == ["/tenant/acme"]

    def test_no_subscribers_sends_nothing(self, app, receiver):
        """An event nobody subscribes to is delivered nowhere and its result is ok."""
        result = Event("user.created", app=app).send({"id": 1})

        assert result.deliveries == []
        assert result.ok
        assert result.state == "delivered"
        assert receiver.received == []


class TestFailures:
    """A failing subscriber is recorded on its delivery while the others succeed."""

    def test_error_status(self, make_app, make_receiver):
        """A 500 is recorded as a retryable failure; the healthy subscriber still succeeds."""
        broken = make_receiver(respond=lambda _r: (500, b"boom"))
        healthy = make_receiver()
        app = make_app({"THORN_SUBSCRIBERS": {"*": [broken.url("/x"), healthy.url("/y")]}})

        result = Event("user.created", app=app).send({})

        failed, ok = result.deliveries
        assert not failed.ok
        assert failed.status_code == 500
        assert failed.retryable
        assert failed.attempts == 1
        assert failed.error == f"{broken.url('/x')} answered 500"
        assert failed.response_body == b"boom"
        assert ok.ok
        assert ok.status_code == 200
        assert ok.error is None
        assert not ok.retryable
        assert result.failed == [failed]
        assert not result.ok
        assert len(broken.wait_for(1, WAIT)) == 1

    def test_client_error_is_final(self, make_app, make_receiver):
        """A 404 is a failure that is not worth retrying."""
        missing = make_receiver(respond=lambda _r: (404, b"no"))
        app = make_app({"THORN_SUBSCRIBERS": {"*": missing.url()}})

        (delivery,) = Event("user.created", app=app).send({}).deliveries

        assert not delivery.ok
        assert delivery.status_code == 404
        assert not delivery.retryable

    def test_refused_url_makes_no_attempt(self, make_app, receiver):
        """URLs the validators refuse (scheme, internal address) fail with no HTTP attempt."""
        app = make_app(
            {
                "THORN_SUBSCRIBERS": {
                    "*": [
                        f"ftp://127.0.0.1:{receiver.port}/hook",
                        "http://192.168.0.1/hook",
                        receiver.url("/good"),
                    ]
                }
            }
        )

        result = Event("user.created", app=app).send({})

        ftp, private, good = result.deliveries
        assert not ftp.ok
        assert "scheme 'ftp'" in (ftp.error or "")
        assert not private.ok
        assert "private address" in (private.error or "")
        for refused in (ftp, private):
            assert refused.attempts == 0
            assert refused.status_code is None
            assert not refused.retryable
        assert good.ok
        assert [r.path for r in receiver.wait_for(1, WAIT)] == ["/good"]
        assert len(receiver.received) == 1

    def test_event_validators_replace_the_apps(self, app, receiver):
        """An event's own recipient validators apply instead of the app's."""
        event = Event(
            "user.created",
            app=app,
            recipient_validators=[ensure_port(443)],
            subscribers=receiver.url(),
        )

        (delivery,) = event.send({}).deliveries

        assert not delivery.ok
        assert f"port {receiver.port} is not one of 443" in (delivery.error or "")
        assert receiver.received == []

    def test_connection_refused(self, make_app, receiver, closed_port_url):
        """A closed port is a retryable connection error; the other subscriber succeeds."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": [closed_port_url, receiver.url()]}})

        refused, ok = Event("user.created", app=app).send({}).deliveries

        assert not refused.ok
        assert refused.status_code is None
        assert refused.retryable
        assert not refused.timed_out
        assert refused.attempts == 1
        assert "cannot reach" in (refused.error or "")
        assert ok.ok

    def test_hanging_receiver_times_out(self, make_app, receiver, hanging_receiver):
        """A receiver that never answers gives a timed_out delivery; the other succeeds."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": [hanging_receiver.url(), receiver.url()]}})

        hung, ok = Event("user.created", app=app, timeout=0.3).send({}).deliveries

        assert not hung.ok
        assert hung.timed_out
        assert hung.retryable
        assert hung.status_code is None
        assert isinstance(hung.exception, DeliveryTimeout)
        assert ok.ok

    def test_send_timeout_overrides_event_timeout(self, app, hanging_receiver):
        """A timeout given to send() applies to that send."""
        event = Event("user.created", app=app, timeout=30, subscribers=hanging_receiver.url())

        (delivery,) = event.send({}, timeout=0.3).deliveries

        assert delivery.timed_out

    def test_trickling_headers_hit_the_total_deadline(self, app, raw_server):
        """A receiver that trickles its answer cannot stretch a delivery past its deadline."""

        class Trickle(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self.wfile.flush()
                for i in range(10):
                    time.sleep(0.1)
                    self.wfile.write(f"X-Slow-{i}: y\r\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"Content-Length: 0\r\n\r\n")
                self.wfile.flush()

            def log_message(self, format: str, *args: object) -> None:
                """Stay quiet."""

        server = raw_server(Trickle)
        event = Event("user.created", app=app, timeout=0.3, subscribers=server.url())

        (delivery,) = event.send({}).deliveries

        assert delivery.timed_out, dict(delivery.response_headers)
        assert not delivery.ok

    def test_connection_goes_to_the_validated_address(self, make_app, make_receiver):
        """The request goes to the address the app's resolver gave and the validators passed."""
        target = make_receiver(host="127.0.0.2")
        app = make_app(resolver=lambda _host, _port: (ipaddress.ip_address("127.0.0.2"),))
        url = f"http://localhost:{target.port}/hook"

        (delivery,) = Event("user.created", app=app, subscribers=url).send({}).deliveries

        assert delivery.ok, delivery.error
        (received,) = target.wait_for(1, WAIT)
        assert received.headers["host"] == f"localhost:{target.port}"


class TestCallbacks:
    """on_success, on_error and on_timeout are called once per delivery."""

    def test_on_success_once_per_delivery(self, make_app, receiver):
        """on_success gets each successful delivery exactly once."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": [receiver.url("/a"), receiver.url("/b")]}})
        seen = []

        result = Event("user.created", app=app).send({}, on_success=seen.append)

        assert sorted(d.id for d in seen) == sorted(d.id for d in result.deliveries)

    def test_on_error_and_on_timeout(self, make_app, make_receiver, hanging_receiver):
        """A failure goes to on_error with its exception, a timeout to on_timeout."""
        broken = make_receiver(respond=lambda _r: (500, b""))
        ok = make_receiver()
        app = make_app(
            {"THORN_SUBSCRIBERS": {"*": [broken.url(), hanging_receiver.url(), ok.url()]}}
        )
        successes, errors, timeouts = [], [], []

        result = Event("user.created", app=app, timeout=0.3).send(
            {},
            on_success=successes.append,
            on_error=lambda d, e: errors.append((d, e)),
            on_timeout=lambda d, e: timeouts.append((d, e)),
        )

        failed, hung, good = result.deliveries
        assert successes == [good]
        assert [(d, type(e).__name__) for d, e in errors] == [(failed, "DeliveryFailed")]
        assert errors[0][1] is failed.exception
        assert [d for d, _ in timeouts] == [hung]
        assert isinstance(timeouts[0][1], DeliveryTimeout)

    def test_on_error_gets_timeouts_without_on_timeout(self, app, hanging_receiver):
        """With no on_timeout, a timeout goes to on_error."""
        errors = []
        event = Event("user.created", app=app, timeout=0.3, subscribers=hanging_receiver.url())

        (delivery,) = event.send({}, on_error=lambda d, e: errors.append((d, e))).deliveries

        assert errors == [(delivery, delivery.exception)]
        assert isinstance(errors[0][1], DeliveryTimeout)

    def test_on_error_for_refused_url(self, app):
        """A refused URL is reported to on_error with a RecipientRefused."""
        errors = []
        event = Event("user.created", app=app, subscribers="http://10.0.0.1/hook")

        event.send({}, on_error=lambda d, e: errors.append(e))

        assert [type(e).__name__ for e in errors] == ["RecipientRefused"]


class TestBadInput:
    """Bad input raises at the call site and nothing is sent."""

    def test_unserializable_payload_raises_naming_the_type(self, make_app, receiver):
        """A payload JSON cannot encode raises SerializationError naming the type."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})

        with pytest.raises(SerializationError, match="object"):
            Event("user.created", app=app).send({"x": object()})

        assert receiver.received == []

    def test_unserializable_payload_raises_without_subscribers(self, app):
        """The payload is checked even when nobody subscribes."""
        with pytest.raises(SerializationError, match="set"):
            Event("user.created", app=app).send({"x": {1, 2}})

    @pytest.mark.parametrize("check", ["absent", None])
    def test_custom_json_codec_without_check_encodes_to_check(self, make_app, check):
        """A JSON codec of THORN_CODECS with no ``check`` (absent or None) has the payload
        encoded to check it when nobody subscribes."""

        class StrictJSON:
            content_type = "application/json"

            def encode(self, data):
                if data.get("forbidden"):
                    raise SerializationError("forbidden key")
                return json.dumps(data).encode()

        codec = StrictJSON()
        if check is None:
            codec.check = None  # type: ignore[attr-defined]
        app = make_app({"THORN_CODECS": {"application/json": codec}})

        Event("user.created", app=app).send({"allowed": 1})
        with pytest.raises(SerializationError, match="forbidden key"):
            Event("user.created", app=app).send({"forbidden": 1})

    def test_unserializable_payload_for_form_subscriber(self, make_app, receiver):
        """A payload the form codec cannot encode raises, and the JSON subscriber gets nothing."""
        form = subscriber(receiver.url("/form"), content_type="application/x-www-form-urlencoded")
        app = make_app({"THORN_SUBSCRIBERS": {"*": [receiver.url("/json"), form]}})

        with pytest.raises(SerializationError, match="list"):
            Event("user.created", app=app).send([1, 2])

        assert receiver.received == []

    def test_invalid_event_name(self):
        """A malformed event name raises InvalidEventName."""
        with pytest.raises(InvalidEventName, match="empty segment"):
            Event("bad..name")

    def test_non_string_headers_raise(self, app):
        """Headers must map strings to strings."""
        with pytest.raises(TypeError, match="headers"):
            Event("user.created", app=app, headers={"X-Count": 1})  # type: ignore[dict-item]


class TestDefaultSafety:
    """Without an opt-in, loopback receivers are refused."""

    def test_default_validators_refuse_loopback(self, receiver):
        """An app with default validators refuses 127.0.0.1 and the receiver gets no request."""
        with Thorn({"THORN_SUBSCRIBERS": {"*": receiver.url()}}, set_as_current=False) as app:
            (delivery,) = Event("user.created", app=app).send({}).deliveries

        assert not delivery.ok
        assert delivery.attempts == 0
        assert "refused" in (delivery.error or "")
        assert receiver.received == []


class TestCurrentApp:
    """Events without ``app=`` use the current app."""

    def test_event_uses_current_app_at_send_time(self, make_app, receiver):
        """An Event made before the app sends with whichever app is current at send()."""
        event = Event("user.created")
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}}, set_as_current=True)

        result = event.send({})

        assert event.app is app
        assert result.ok
        assert len(receiver.wait_for(1, WAIT)) == 1


def test_concurrent_sends_from_threads(make_app, receiver):
    """Several threads sending through one app each get their own complete result."""
    app = make_app({"THORN_SUBSCRIBERS": {"*": [receiver.url("/a"), receiver.url("/b")]}})
    event = Event("user.created", app=app)
    results = []
    lock = threading.Lock()

    def send(n: int) -> None:
        result = event.send({"n": n})
        with lock:
            results.append(result)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 5
    assert all(r.ok and len(r.deliveries) == 2 for r in results)
    assert len(receiver.wait_for(10, WAIT)) == 10
