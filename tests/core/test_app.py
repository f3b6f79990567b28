"""The Thorn app: current-app semantics, settings, reconfiguration, closing and signals."""

from __future__ import annotations

import threading

import pytest

import thorn_core.app
from thorn_core import Event, ImproperlyConfigured, Settings, Thorn, current_app, signals

#: Seconds to wait for something that should happen at once.
WAIT = 5.0


class TestCurrentApp:
    """Which app events without ``app=`` use."""

    def test_newest_app_is_current(self):
        """Each app built with the default set_as_current=True becomes the current one."""
        with Thorn() as first:
            assert current_app() is first
            with Thorn() as second:
                assert current_app() is second

    def test_set_as_current_false_leaves_current_alone(self):
        """An app built with set_as_current=False does not replace the current app."""
        with Thorn() as current, Thorn(set_as_current=False) as other:
            assert current_app() is current
            assert current_app() is not other

    def test_set_current_makes_an_app_current(self):
        """set_current() makes an explicit app the current one."""
        with Thorn() as first, Thorn(set_as_current=False) as second:
            second.set_current()
            assert current_app() is second
            assert current_app() is not first

    def test_current_app_builds_a_default(self, monkeypatch):
        """With no app built yet, current_app() builds one with default settings and keeps it."""
        monkeypatch.setattr(thorn_core.app, "_current", None)
        # A fresh lock of the same kind, so that a deadlock here cannot hang later tests.
        fresh_lock = type(thorn_core.app._current_lock)()
        monkeypatch.setattr(thorn_core.app, "_current_lock", fresh_lock)
        built: list[Thorn] = []
        worker = threading.Thread(target=lambda: built.append(current_app()), daemon=True)

        worker.start()
        worker.join(2.0)

        assert built, "current_app() did not return (deadlock on _current_lock?)"
        (app,) = built
        assert isinstance(app, Thorn)
        assert app.settings == Settings()
        assert current_app() is app
        app.close()

    def test_event_app_binds_an_event(self, app):
        """app.event() makes an Event bound to that app."""
        event = app.event("user.created", timeout=2)

        assert isinstance(event, Event)
        assert event.app is app
        assert event.timeout == 2


class TestSettings:
    """Settings come from THORN_* keys and bad ones fail at start-up, naming the key."""

    def test_unknown_key(self):
        """An unknown THORN_ key raises and names the key."""
        with pytest.raises(ImproperlyConfigured, match="THORN_FOO"):
            Thorn({"THORN_FOO": 1}, set_as_current=False)

    def test_wrong_type(self):
        """A value of the wrong type raises and names the key."""
        with pytest.raises(ImproperlyConfigured, match="THORN_EVENT_TIMEOUT must be a positive"):
            Thorn({"THORN_EVENT_TIMEOUT": "x"}, set_as_current=False)

    def test_int_is_not_a_bool(self):
        """THORN_RETRY=1 is refused: it must be True or False."""
        with pytest.raises(ImproperlyConfigured, match="THORN_RETRY must be True or False"):
            Thorn({"THORN_RETRY": 1}, set_as_current=False)

    def test_other_keys_are_ignored(self):
        """Keys without the THORN_ prefix (the rest of a Django or Flask config) are ignored."""
        with Thorn(
            {"DEBUG": True, "SECRET_KEY": "x", "THORN_EVENT_TIMEOUT": 1.5}, set_as_current=False
        ) as app:
            assert app.settings.event_timeout == 1.5
            assert app.settings.retry is True

    def test_settings_object(self):
        """A Settings object may be given instead of a mapping."""
        with Thorn(Settings(event_timeout=2.0), set_as_current=False) as app:
            assert app.settings.event_timeout == 2.0

    def test_settings_round_trip(self):
        """as_mapping() gives THORN_* keys that from_mapping() reads back."""
        settings = Settings(event_timeout=2.0, retry=False, pool_size=3)

        assert Settings.from_mapping(settings.as_mapping()) == settings

    def test_unknown_dispatcher_fails_at_start_up(self):
        """A bad THORN_DISPATCHER raises when the app is built, not at the first send."""
        with pytest.raises(ImproperlyConfigured, match="nope"):
            Thorn({"THORN_DISPATCHER": "nope"}, set_as_current=False)


class TestConfigure:
    """configure() swaps an app's settings in place."""

    def test_configure_swaps_settings_and_subscribers(self, make_app, make_receiver):
        """After configure(), sends use the new subscribers and the old dispatcher is closed."""
        old, new = make_receiver(), make_receiver()
        app = make_app({"THORN_SUBSCRIBERS": {"*": old.url()}})
        event = Event("user.created", app=app)
        event.send({"n": 1})
        first_dispatcher = app.dispatcher

        app.configure(
            {
                "THORN_RECIPIENT_VALIDATORS": app.settings.recipient_validators,
                "THORN_SUBSCRIBERS": {"*": new.url()},
                "THORN_EVENT_TIMEOUT": 1.0,
            }
        )
        event.send({"n": 2})

        assert app.settings.event_timeout == 1.0
        assert app.dispatcher is not first_dispatcher
        assert [r.json() for r in old.wait_for(1, WAIT)] == [{"n": 1}]
        assert [r.json() for r in new.wait_for(1, WAIT)] == [{"n": 2}]
        assert len(old.received) == 1

    def test_failed_configure_keeps_old_settings(self, make_app, receiver):
        """configure() with a bad setting raises and leaves the app as it was."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})
        before = app.settings

        with pytest.raises(ImproperlyConfigured, match="THORN_POOL_SIZE"):
            app.configure({"THORN_POOL_SIZE": 0})

        assert app.settings is before
        assert Event("user.created", app=app).send({}).ok


class TestIndependentApps:
    """Several apps in one process do not share subscribers or dispatchers."""

    def test_two_apps_with_different_subscribers(self, make_app, make_receiver):
        """Each app delivers only to its own subscribers."""
        first_receiver, second_receiver = make_receiver(), make_receiver()
        first = make_app({"THORN_SUBSCRIBERS": {"*": first_receiver.url()}})
        second = make_app({"THORN_SUBSCRIBERS": {"*": second_receiver.url()}})

        Event("user.created", app=first).send({"app": 1})
        Event("user.created", app=second).send({"app": 2})

        assert [r.json() for r in first_receiver.wait_for(1, WAIT)] == [{"app": 1}]
        assert [r.json() for r in second_receiver.wait_for(1, WAIT)] == [{"app": 2}]
        assert first.dispatcher is not second.dispatcher
        assert len(first_receiver.received) == len(second_receiver.received) == 1

    def test_each_app_applies_its_own_defaults(self, make_app, receiver):
        """Events bound to different apps take their defaults from their own app."""
        first = make_app({"THORN_EVENT_TIMEOUT": 1.0})
        second = make_app({"THORN_EVENT_TIMEOUT": 2.0})

        assert Event("user.created", app=first).prepare({}).timeout == 1.0
        assert Event("user.created", app=second).prepare({}).timeout == 2.0


class TestClose:
    """close() releases the dispatcher; the app keeps working afterwards."""

    def test_close_closes_the_dispatcher_and_app_still_works(self, make_app, receiver):
        """After close(), the next send builds a fresh dispatcher and is delivered."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": [receiver.url("/a"), receiver.url("/b")]}})
        event = Event("user.created", app=app)
        event.send({"n": 1})
        dispatcher = app.dispatcher
        sessions = list(dispatcher.transport._sessions)
        assert sessions

        app.close()

        assert dispatcher.transport._sessions == []
        assert dispatcher._executor is None
        for session in sessions:
            assert not session.get_adapter("http://").poolmanager.pools
        assert event.send({"n": 2}).ok
        assert app.dispatcher is not dispatcher
        assert len(receiver.wait_for(4, WAIT)) == 4

    def test_close_twice_is_harmless(self, app):
        """Closing an app twice, or one that never sent, does nothing wrong."""
        app.close()
        app.close()

    def test_context_manager_closes(self, loopback_validators, receiver):
        """Using the app as a context manager closes it at the end."""
        settings = {
            "THORN_RECIPIENT_VALIDATORS": loopback_validators,
            "THORN_SUBSCRIBERS": {"*": receiver.url()},
        }
        with Thorn(settings, set_as_current=False) as app:
            assert Event("user.created", app=app).send({}).ok
            dispatcher = app.dispatcher

        assert dispatcher.transport._sessions == []


class TestSignals:
    """The lifecycle signals fire with the app as sender."""

    def test_event_sent_and_delivery_succeeded(self, make_app, receiver):
        """event_sent gets the result; delivery_succeeded gets each successful delivery."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": [receiver.url("/a"), receiver.url("/b")]}})
        sent, succeeded = [], []

        def on_sent(sender, **kwargs):
            sent.append((sender, kwargs["result"]))

        def on_success(sender, **kwargs):
            succeeded.append((sender, kwargs["delivery"]))

        with (
            signals.event_sent.connected_to(on_sent, sender=app),
            signals.delivery_succeeded.connected_to(on_success, sender=app),
        ):
            result = Event("user.created", app=app).send({})

        assert sent == [(app, result)]
        assert sorted(d.id for _, d in succeeded) == sorted(d.id for d in result.deliveries)
        assert all(s is app for s, _ in succeeded)

    def test_delivery_failed(self, make_app, make_receiver):
        """delivery_failed gets each failed delivery; delivery_succeeded does not fire for it."""
        broken = make_receiver(respond=lambda _r: (503, b""))
        app = make_app({"THORN_SUBSCRIBERS": {"*": broken.url()}})
        failed, succeeded = [], []

        def on_failure(sender, **kwargs):
            failed.append((sender, kwargs["delivery"]))

        def on_success(sender, **kwargs):
            succeeded.append(kwargs["delivery"])

        with (
            signals.delivery_failed.connected_to(on_failure, sender=app),
            signals.delivery_succeeded.connected_to(on_success, sender=app),
        ):
            result = Event("user.created", app=app).send({})

        assert failed == [(app, result.deliveries[0])]
        assert failed[0][1].status_code == 503
        assert succeeded == []

    def test_signals_of_another_app_are_not_received(self, make_app, receiver):
        """A receiver connected for one app hears nothing of another app's sends."""
        mine = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})
        other = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})
        heard = []

        def on_sent(sender, **kwargs):
            heard.append(sender)

        with signals.event_sent.connected_to(on_sent, sender=mine):
            Event("user.created", app=other).send({})
            Event("user.created", app=mine).send({})

        assert heard == [mine]

    def test_failing_signal_receiver_does_not_stop_delivery(self, make_app, receiver, caplog):
        """A signal receiver that raises is logged; the deliveries still complete."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": [receiver.url("/a"), receiver.url("/b")]}})

        def broken(sender, **kwargs):
            raise RuntimeError("metrics are down")

        with signals.delivery_succeeded.connected_to(broken, sender=app):
            result = Event("user.created", app=app).send({})

        assert result.ok
        assert len(result.deliveries) == 2
        assert "metrics are down" in caplog.text
