"""The extension: per-app state from THORN_* config, application factories, two apps at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import flask
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

import thorn_core
from thorn_core import model_reverser
from thorn_core.exceptions import ImproperlyConfigured
from thorn_core.receiver import WebhookReceiver
from thorn_flask import Base, Subscriber, Thorn, get_state
from thorn_flask.log import SQLAlchemyDeliveryLog

from .app import LOOPBACK, Article, Subscription, db, store_subscription


class TestInitApp:
    """``Thorn(app)`` and ``init_app`` keep a core app per Flask app in ``app.extensions``."""

    def test_settings_come_from_the_config(self, make_app: Callable[..., flask.Flask]) -> None:
        """THORN_* keys become the core app's settings; after-commit sending is the default."""
        app = make_app({"THORN_EVENT_TIMEOUT": 1.5})
        state = app.extensions["thorn"]
        assert state is get_state(app)
        assert state.core.settings.event_timeout == 1.5
        assert state.core.settings.signal_honors_transaction is True

    def test_unknown_setting_raises_at_start_up(self) -> None:
        """A misspelt THORN_ key fails init_app, not the first event."""
        app = flask.Flask(__name__)
        app.config["THORN_EVENT_TIMEOUTS"] = 1
        with pytest.raises(ImproperlyConfigured, match="THORN_EVENT_TIMEOUTS"):
            Thorn(app)

    def test_application_factory(self) -> None:
        """One extension object sets up apps made later, without keeping any of them."""
        thorn = Thorn()
        app = flask.Flask(__name__)
        state = thorn.init_app(app)
        assert app.extensions["thorn"] is state
        assert not hasattr(thorn, "app")
        assert state.source is None  # no database: static subscribers only
        with app.app_context():
            assert thorn.core is state.core
        state.core.close()

    def test_current_core_app_follows_the_app_context(self) -> None:
        """Inside an app context, thorn_core.current_app() is that Flask app's core app."""
        app = flask.Flask(__name__)
        state = Thorn(app).init_app(app)
        with app.app_context():
            assert thorn_core.current_app() is state.core
        assert thorn_core.current_app() is not state.core
        state.core.close()

    def test_plain_sqlalchemy_with_the_ready_model(
        self, tmp_path: Path, receiver: WebhookReceiver
    ) -> None:
        """Without Flask-SQLAlchemy: a session factory and the ready Subscriber model."""
        engine = create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
        Base.metadata.create_all(engine)
        sessions = sessionmaker(engine)
        with sessions.begin() as session:
            session.add(Subscriber(event="user.*", url=receiver.url("/u")))
        app = flask.Flask(__name__)
        app.config["THORN_RECIPIENT_VALIDATORS"] = LOOPBACK
        state = Thorn(app, session_factory=sessions).init_app(app)
        assert state.model is Subscriber
        with app.app_context():
            thorn_core.Event("user.created").send({"id": 1})
        assert [w.event for w in receiver.received] == ["user.created"]
        state.core.close()
        engine.dispose()


class TestTwoApps:
    """Two Flask apps in one process keep their own settings, subscribers and dispatcher."""

    def test_each_app_sends_to_its_own_subscribers(
        self, make_app: Callable[..., flask.Flask], receiver: WebhookReceiver
    ) -> None:
        """The same model sends through the Thorn of the app whose context commits."""
        first = make_app({"THORN_SUBSCRIBERS": {"article.created": receiver.url("/first")}})
        second = make_app(
            {"THORN_SUBSCRIBERS": {"article.created": receiver.url("/second")}},
        )
        assert get_state(first).core is not get_state(second).core
        for app in (first, second, first):
            with app.app_context():
                db.session.add(Article(title=app.name))
                db.session.commit()
        assert [(w.path, w.json()["data"]["title"]) for w in receiver.received] == [
            ("/first", first.name),
            ("/second", second.name),
            ("/first", first.name),
        ]
        assert get_state(first).core.dispatcher is not get_state(second).core.dispatcher

    def test_each_app_has_its_own_stored_subscribers(
        self, make_app: Callable[..., flask.Flask], receiver: WebhookReceiver
    ) -> None:
        """A subscription stored in one app's database is unknown to the other app."""
        first, second = make_app(), make_app({"THORN_EVENT_TIMEOUT": 2.0})
        with first.app_context():
            db.session.add(Subscription(url=receiver.url("/db"), event="*"))
            db.session.commit()
        for app in (first, second):
            with app.app_context():
                thorn_core.Event("ping.me").send({"app": app.name})
        assert [w.json() for w in receiver.received] == [{"app": first.name}]
        assert get_state(second).core.settings.event_timeout == 2.0
        assert get_state(first).core.settings.event_timeout == 3.0


def _computed(event: str, sender: object = None, **context: object) -> list[str]:
    return ["https://hooks.example.com/computed"]


class TestStartUpErrors:
    """Configuration errors fail ``init_app``, not the first save; 1.x forms are accepted."""

    def test_invalid_subscribers_fail_init_app(self) -> None:
        """A malformed THORN_SUBSCRIBERS fails init_app, naming the pattern."""
        app = flask.Flask(__name__)
        app.config["THORN_SUBSCRIBERS"] = {"user.*.created": "https://example.com/"}
        with pytest.raises(ImproperlyConfigured, match=r"THORN_SUBSCRIBERS\['user\.\*\.created'\]"):
            Thorn(app)

    def test_urls_and_callables_in_one_list(self) -> None:
        """A THORN_SUBSCRIBERS list mixing URLs and callables (as in 1.x) is accepted."""
        app = flask.Flask(__name__)
        app.config["THORN_SUBSCRIBERS"] = {"user.*": ["https://example.com/", _computed]}
        Thorn(app)
        core = get_state(app).core
        assert [s.url for s in core.subscribers_for("user.created")] == [
            "https://example.com/",
            "https://hooks.example.com/computed",
        ]

    def test_bad_delivery_log_path_fails_init_app(self) -> None:
        """A THORN_DELIVERY_LOG path that imports nothing fails init_app."""
        app = flask.Flask(__name__)
        app.config["THORN_DELIVERY_LOG"] = "no_such_module:Log"
        with pytest.raises(ImproperlyConfigured, match="no_such_module"):
            Thorn(app)

    def test_delivery_log_class_is_bound_to_the_database(
        self, make_app: Callable[..., flask.Flask]
    ) -> None:
        """THORN_DELIVERY_LOG given as the class itself is made and bound to the app's db."""
        app = make_app({"THORN_DELIVERY_LOG": SQLAlchemyDeliveryLog})
        state = get_state(app)
        assert isinstance(state.delivery_log, SQLAlchemyDeliveryLog)
        assert state.core.delivery_log is state.delivery_log
        assert state.delivery_log.sessions is not None

    def test_upper_case_digest_row_delivers(
        self, make_app: Callable[..., flask.Flask], receiver: WebhookReceiver
    ) -> None:
        """A stored row with 'SHA512' (as 1.x wrote them) delivers, signed with SHA-512."""
        app = make_app()
        row = store_subscription(app, receiver.url("/hook"), "order.*", hmac_digest="SHA512")
        with app.app_context():
            result = thorn_core.Event("order.paid").send({"id": 1})

        assert [d.ok for d in result.deliveries] == [True]
        assert receiver.wait_for(1, 5.0)[0].hook_hmac_valid(row.hmac_secret, "sha512")

    def test_unknown_endpoint_does_not_fail_a_commit(
        self,
        make_app: Callable[..., flask.Flask],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A reverser naming no endpoint is logged when the event does not propagate errors;
        the row is committed."""
        event = Article.webhooks.events["on_create"]  # type: ignore[attr-defined]
        monkeypatch.setattr(event, "reverse", model_reverser("no_such_endpoint", id="id"))
        monkeypatch.setattr(event, "propagate_errors", False)
        app = make_app()
        with app.app_context(), caplog.at_level(logging.ERROR, logger="thorn_core.model_events"):
            db.session.add(Article(title="kept"))
            db.session.commit()
            assert db.session.query(Article).filter_by(title="kept").count() == 1
        assert "no_such_endpoint" in caplog.text
