"""Dispatchers: lookup by name, entry point or path; disabled; the default one's fan-out."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler
from importlib.metadata import entry_points

import pytest

from thorn_core import (
    Event,
    ImproperlyConfigured,
    SerializationError,
    Thorn,
    UnknownDispatcher,
    buffer_events,
    dispatchers,
)
from thorn_core.dispatchers.default import DefaultDispatcher
from thorn_core.dispatchers.disabled import DisabledDispatcher
from thorn_core.receiver import ReceivedWebhook, Reply

#: Seconds to wait for something that should happen at once.
WAIT = 5.0


class TestLookup:
    """How THORN_DISPATCHER is resolved."""

    def test_available_lists_the_built_ins(self):
        """available() names at least the default and disabled dispatchers."""
        assert {"default", "disabled"} <= set(dispatchers.available())

    def test_built_ins_are_registered_as_entry_points(self):
        """The built-ins are found through the real ``thorn.dispatchers`` entry points."""
        found = {ep.name: ep for ep in entry_points(group="thorn.dispatchers")}

        assert found["default"].load() is DefaultDispatcher
        assert found["disabled"].load() is DisabledDispatcher

    def test_resolve_by_name(self):
        """Entry-point names resolve to their classes."""
        assert dispatchers.resolve("default") is DefaultDispatcher
        assert dispatchers.resolve("disabled") is DisabledDispatcher

    def test_unknown_name_lists_known_ones(self):
        """An unknown name raises UnknownDispatcher listing the names that exist."""
        with pytest.raises(UnknownDispatcher, match=r"'nope'.*default.*disabled"):
            Thorn({"THORN_DISPATCHER": "nope"}, set_as_current=False)

    def test_module_path(self, make_app):
        """``module:Class`` loads a dispatcher class from any importable module."""
        app = make_app({"THORN_DISPATCHER": "tests.core._recording_dispatcher:RecordingDispatcher"})

        result = Event("user.created", app=app).send({"id": 1})

        assert type(app.dispatcher).__name__ == "RecordingDispatcher"
        assert app.dispatcher.dispatched == [result]
        assert result.state == "queued"
        assert result.deliveries == []

    def test_app_closes_a_custom_dispatcher(self, make_app):
        """app.close() calls the dispatcher's close()."""
        app = make_app({"THORN_DISPATCHER": "tests.core._recording_dispatcher:RecordingDispatcher"})
        dispatcher = app.dispatcher

        app.close()

        assert dispatcher.closed

    def test_class_object(self, make_app):
        """A dispatcher class may be given directly instead of a name."""
        from tests.core._recording_dispatcher import RecordingDispatcher

        app = make_app({"THORN_DISPATCHER": RecordingDispatcher})

        assert isinstance(app.dispatcher, RecordingDispatcher)

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("_no_such_module:Dispatcher", "cannot import '_no_such_module'"),
            ("tests.core._recording_dispatcher:Missing", "has no 'Missing'"),
            ("tests.core._recording_dispatcher:NOT_CALLABLE", "not callable"),
            ("tests.core._recording_dispatcher:", "not of the form 'module:Class'"),
        ],
    )
    def test_bad_module_path(self, value, message):
        """A ``module:Class`` that cannot be loaded raises UnknownDispatcher saying why."""
        with pytest.raises(UnknownDispatcher, match=message):
            Thorn({"THORN_DISPATCHER": value}, set_as_current=False)

    def test_unknown_dispatcher_is_improperly_configured(self):
        """UnknownDispatcher is an ImproperlyConfigured, so one except clause catches both."""
        assert issubclass(UnknownDispatcher, ImproperlyConfigured)


class TestDisabled:
    """The disabled dispatcher sends nothing."""

    def test_disabled_sends_nothing(self, make_app, receiver):
        """With ``disabled``, sends return state 'disabled' and the receiver gets nothing."""
        app = make_app({"THORN_DISPATCHER": "disabled", "THORN_SUBSCRIBERS": {"*": receiver.url()}})

        result = Event("user.created", app=app).send({"id": 1})

        assert result.state == "disabled"
        assert result.deliveries == []
        assert receiver.received == []

    def test_disabled_still_rejects_unserializable_payloads(self, make_app, receiver):
        """Bad input raises at send() even when nothing is sent, as in production."""
        app = make_app({"THORN_DISPATCHER": "disabled", "THORN_SUBSCRIBERS": {"*": receiver.url()}})

        with pytest.raises(SerializationError, match="object"):
            Event("user.created", app=app).send({"x": object()})


class TestDefaultFanOut:
    """The default dispatcher fans out on a thread pool, one session per thread."""

    def test_fan_out_to_twenty_subscribers(self, make_app, receiver):
        """Every one of 20 subscribers (paths on one receiver) gets the event once."""
        paths = [f"/hook/{i}" for i in range(20)]
        app = make_app({"THORN_SUBSCRIBERS": {"*": [receiver.url(p) for p in paths]}})

        result = Event("user.created", app=app).send({"id": 1})

        assert result.state == "delivered"
        assert result.ok
        assert len(result.deliveries) == 20
        assert sorted(r.path for r in receiver.wait_for(20, WAIT)) == sorted(paths)
        assert len({r.delivery_id for r in receiver.received}) == 20

    def test_fan_out_is_concurrent(self, make_app, make_receiver):
        """Deliveries to slow subscribers overlap instead of running one after another."""
        lock = threading.Lock()
        in_flight = 0
        peak = 0

        def slow(_request: ReceivedWebhook) -> Reply:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.2)
            with lock:
                in_flight -= 1
            return 200, b"ok"

        slow_receiver = make_receiver(respond=slow)
        app = make_app(
            {"THORN_SUBSCRIBERS": {"*": [slow_receiver.url(f"/{i}") for i in range(10)]}}
        )

        result = Event("user.created", app=app).send({})

        assert result.ok
        assert len(result.deliveries) == 10
        assert peak > 1

    def test_pool_size_bounds_concurrency(self, make_app, make_receiver):
        """No more than THORN_POOL_SIZE deliveries are in flight at once."""
        lock = threading.Lock()
        in_flight = 0
        peak = 0

        def slow(_request: ReceivedWebhook) -> Reply:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.05)
            with lock:
                in_flight -= 1
            return 200, b"ok"

        slow_receiver = make_receiver(respond=slow)
        app = make_app(
            {
                "THORN_POOL_SIZE": 2,
                "THORN_SUBSCRIBERS": {"*": [slow_receiver.url(f"/{i}") for i in range(6)]},
            }
        )

        assert Event("user.created", app=app).send({}).ok
        assert peak <= 2

    def test_one_session_per_thread(self, make_app, receiver):
        """A fan-out uses several sessions, one per pool thread, all closed by app.close()."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": [receiver.url(f"/{i}") for i in range(10)]}})

        Event("user.created", app=app).send({})
        sessions = list(app.dispatcher.transport._sessions)

        assert len(sessions) > 1
        assert len({id(s) for s in sessions}) == len(sessions)
        assert all(s.get_adapter("http://").poolmanager.pools for s in sessions)

        app.close()

        for session in sessions:
            assert not session.get_adapter("http://").poolmanager.pools

    def test_sequential_sends_reuse_one_connection(self, make_app, raw_server):
        """Several sends to one subscriber from one thread go over one kept-alive connection."""

        class Recording(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                owner = self.server.owner  # type: ignore[attr-defined]
                with owner.lock:
                    owner.client_ports.append(self.client_address[1])
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Stay quiet."""

        server = raw_server(Recording)
        app = make_app({"THORN_SUBSCRIBERS": {"*": server.url("/hook")}})
        event = Event("user.created", app=app)

        results = [event.send({"n": n}) for n in range(5)]

        assert all(r.ok for r in results)
        assert len(server.client_ports) == 5
        assert len(set(server.client_ports)) == 1

    def test_sequential_sends_to_pytest_httpserver(self, make_app, httpserver):
        """Sequential sends to a third-party server (pytest-httpserver) all succeed."""
        httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
        app = make_app({"THORN_SUBSCRIBERS": {"*": httpserver.url_for("/hook")}})
        event = Event("user.created", app=app)

        for n in range(3):
            assert event.send({"n": n}).ok

        assert len(httpserver.log) == 3
        httpserver.check_assertions()

    def test_buffered_batch_is_dispatched_together(self, make_app, receiver):
        """A flushed buffer hands every result to the dispatcher at once, each fully delivered."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": [receiver.url("/a"), receiver.url("/b")]}})
        event = Event("user.created", app=app)

        with buffer_events(app=app):
            results = [event.send({"n": n}) for n in range(3)]

        assert all(r.state == "delivered" and len(r.deliveries) == 2 for r in results)
        assert len(receiver.wait_for(6, WAIT)) == 6

    def test_batch_that_fails_to_plan_records_nothing(self, make_app):
        """A batch (a buffer flush, an outbox relay) whose planning raises records nothing,
        so dispatching it again does not log a failure twice."""
        from thorn_core.results import SendResult

        def store_down(event, sender=None, **context):
            raise RuntimeError("subscriber store unavailable")

        app = make_app(
            {
                "THORN_SUBSCRIBERS": {
                    "a.x": {"url": "https://example.com/hook", "content_type": "text/x-none"},
                    "b.x": store_down,
                }
            }
        )
        first = Event("a.x", app=app).prepare({"n": 1}, app=app)
        second = Event("b.x", app=app).prepare({"n": 2}, app=app)

        from thorn_core.fanout import delivery_id_for

        (subscriber,) = app.static_subscribers.matching("a.x")
        for _ in range(2):
            results = [SendResult(first), SendResult(second)]
            with pytest.raises(RuntimeError, match="store unavailable"):
                app.dispatch(results)
            assert results[0].deliveries == []
        assert app.delivery_log.attempts(delivery_id_for(first, subscriber)) == []

        # Once the store is back, the batch is recorded once.
        app.dispatch([SendResult(first)])
        assert len(app.delivery_log.attempts(delivery_id_for(first, subscriber))) == 1
