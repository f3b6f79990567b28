"""buffer_events: events sent inside the block go out together when it ends."""

from __future__ import annotations

import threading
import time

import pytest

from thorn_core import Event, SerializationError, buffer_events

#: Seconds to wait for something that should happen at once.
WAIT = 5.0


@pytest.fixture
def hooked(make_app, receiver):
    """An app whose every event goes to ``receiver``, and an event bound to it."""
    app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})
    return app, Event("user.created", app=app)


class TestBuffering:
    """Events wait for the end of the block."""

    def test_delivered_when_the_block_exits(self, hooked, receiver):
        """Nothing is sent inside the block; everything is sent when it exits."""
        app, event = hooked

        with buffer_events(app=app):
            results = [event.send({"n": n}) for n in range(3)]
            assert receiver.received == []
            assert [r.state for r in results] == ["buffered"] * 3
            assert all(r.deliveries == [] for r in results)

        assert [r.state for r in results] == ["delivered"] * 3
        assert all(len(r.deliveries) == 1 and r.ok for r in results)
        received = receiver.wait_for(3, WAIT)
        assert sorted(r.json()["n"] for r in received) == [0, 1, 2]

    def test_uses_the_current_app_by_default(self, make_app, receiver):
        """Without app=, buffer_events buffers the current app's events."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}}, set_as_current=True)

        with buffer_events() as buf:
            Event("user.created").send({})
            assert buf.app is app
            assert len(buf.pending) == 1

        assert len(receiver.wait_for(1, WAIT)) == 1

    def test_flush_freq(self, hooked, receiver):
        """With flush_freq=2, every second event flushes the buffer."""
        app, event = hooked

        with buffer_events(flush_freq=2, app=app) as buf:
            first = event.send({"n": 1})
            assert first.state == "buffered"
            second = event.send({"n": 2})
            assert [first.state, second.state] == ["delivered", "delivered"]
            assert len(receiver.received) == 2
            third = event.send({"n": 3})
            assert third.state == "buffered"
            assert buf.pending == [third]

        assert third.state == "delivered"
        assert len(receiver.wait_for(3, WAIT)) == 3

    def test_explicit_flush(self, hooked, receiver):
        """buf.flush() sends what is waiting and returns it; the exit sends only the rest."""
        app, event = hooked

        with buffer_events(app=app) as buf:
            early = event.send({"n": 1})
            flushed = buf.flush()
            assert flushed == [early]
            assert early.state == "delivered"
            assert len(receiver.received) == 1
            late = event.send({"n": 2})
            assert buf.flush() == [late]
            assert buf.flush() == []

        assert len(receiver.wait_for(2, WAIT)) == 2
        assert len(receiver.received) == 2

    def test_flush_timeout(self, hooked, receiver):
        """Once flush_timeout has passed, maybe_flush() (or the next send) flushes."""
        app, event = hooked

        with buffer_events(flush_timeout=0.2, app=app) as buf:
            first = event.send({"n": 1})
            assert buf.maybe_flush() == []
            assert first.state == "buffered"
            time.sleep(0.25)
            assert buf.maybe_flush() == [first]
            assert first.state == "delivered"
            second = event.send({"n": 2})
            time.sleep(0.25)
            third = event.send({"n": 3})
            assert [second.state, third.state] == ["delivered", "delivered"]

        assert len(receiver.wait_for(3, WAIT)) == 3

    @pytest.mark.parametrize(
        "options", [{"flush_freq": 0}, {"flush_freq": True}, {"flush_timeout": 0}]
    )
    def test_bad_options(self, app, options):
        """A flush_freq below 1 or a non-positive flush_timeout raises ValueError."""
        with pytest.raises(ValueError, match="flush_"), buffer_events(app=app, **options):
            pass


class TestNesting:
    """Nested blocks share the outermost buffer."""

    def test_nested_blocks_flush_at_the_outermost_exit(self, hooked, receiver):
        """The inner block's exit sends nothing; the outer one sends everything."""
        app, event = hooked

        with buffer_events(app=app) as outer:
            event.send({"n": 1})
            with buffer_events(app=app) as inner:
                assert inner is outer
                event.send({"n": 2})
            assert receiver.received == []
            assert len(outer.pending) == 2
            event.send({"n": 3})

        assert sorted(r.json()["n"] for r in receiver.wait_for(3, WAIT)) == [1, 2, 3]

    def test_buffer_ends_with_the_block(self, hooked, receiver):
        """After the block, sends are delivered at once again."""
        app, event = hooked
        with buffer_events(app=app):
            pass

        assert app.active_buffer() is None
        assert event.send({}).state == "delivered"
        assert len(receiver.received) == 1


class TestErrors:
    """Exceptions inside the block and bad payloads."""

    def test_exception_delivers_once_and_propagates(self, hooked, receiver):
        """Events sent before an exception are delivered exactly once; the exception goes on."""
        app, event = hooked

        def send_then_fail() -> None:
            with buffer_events(app=app):
                event.send({"n": 1})
                event.send({"n": 2})
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            send_then_fail()

        assert sorted(r.json()["n"] for r in receiver.wait_for(2, WAIT)) == [1, 2]
        assert len(receiver.received) == 2
        assert app.active_buffer() is None

    def test_exception_in_nested_block(self, hooked, receiver):
        """An exception through nested blocks still delivers once, at the outermost exit."""
        app, event = hooked

        def send_then_fail() -> None:
            with buffer_events(app=app), buffer_events(app=app):
                event.send({"n": 1})
                raise KeyError("x")

        with pytest.raises(KeyError):
            send_then_fail()

        assert len(receiver.wait_for(1, WAIT)) == 1
        assert len(receiver.received) == 1

    def test_unserializable_payload_raises_at_send(self, hooked, receiver):
        """A payload that cannot be encoded raises at send(), not when the buffer flushes."""
        app, event = hooked

        with buffer_events(app=app) as buf:
            good = event.send({"n": 1})
            with pytest.raises(SerializationError, match="object"):
                event.send({"n": object()})
            assert buf.pending == [good]

        assert good.state == "delivered"
        assert len(receiver.wait_for(1, WAIT)) == 1

    def test_form_payload_error_raises_at_send(self, make_app, receiver):
        """A payload the form codec refuses raises at send(); other buffered events still go."""
        form = {"url": receiver.url("/form"), "content_type": "application/x-www-form-urlencoded"}
        app = make_app({"THORN_SUBSCRIBERS": {"*": [form]}})
        event = Event("user.created", app=app)

        with buffer_events(app=app):
            good = event.send({"n": 1})
            with pytest.raises(SerializationError, match="mapping"):
                event.send([1, 2])

        assert good.state == "delivered"
        assert len(receiver.wait_for(1, WAIT)) == 1


class TestThreads:
    """Buffers belong to one thread."""

    def test_other_threads_send_immediately(self, hooked, receiver):
        """A send from another thread during the block is delivered at once."""
        app, event = hooked
        from_thread = []

        with buffer_events(app=app):
            mine = event.send({"who": "main"})
            worker = threading.Thread(target=lambda: from_thread.append(event.send({"who": "t"})))
            worker.start()
            worker.join(WAIT)
            (theirs,) = from_thread
            assert theirs.state == "delivered"
            assert theirs.ok
            assert mine.state == "buffered"
            assert [r.json()["who"] for r in receiver.wait_for(1, WAIT)] == ["t"]

        assert mine.state == "delivered"
        assert len(receiver.wait_for(2, WAIT)) == 2
