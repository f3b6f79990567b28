"""The Flask extension: one core Thorn app per Flask app, kept in ``app.extensions["thorn"]``."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import flask
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from werkzeug.utils import import_string

import thorn_core
from thorn_core.app import add_app_lookup
from thorn_core.exceptions import ImproperlyConfigured
from thorn_core.settings import PREFIX
from thorn_core.subscribers import sender_key

from .binding import binding
from .log import SQLAlchemyDeliveryLog
from .models import (
    DeliveryAttempt,
    DeliveryAttemptMixin,
    OutboxEvent,
    OutboxEventMixin,
    Subscriber,
    SubscriberMixin,
    declare_tables,
)
from .outbox import CurrentSession, SQLAlchemyOutbox
from .secret_column import use_keys, warn_unencrypted
from .store import SessionFactory, StoredSubscribers

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

__all__ = ["EXTENSION_KEY", "Thorn", "ThornState", "get_state"]

#: The key of the per-app state in ``app.extensions``.
EXTENSION_KEY = "thorn"

#: Returns the user making the request (an object with ``id``, an id, or None).
CurrentUser = Callable[[], Any]

_UNSET: Any = object()


def _flask_login_user() -> Any:
    """Flask-Login's ``current_user`` when Flask-Login is installed, else an error."""
    try:
        from flask_login import current_user  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ImproperlyConfigured(
            "the Thorn subscription API needs to know the user: pass "
            "Thorn(app, current_user=callable), or install Flask-Login"
        ) from None
    return current_user


def user_key(user: Any) -> Any:
    """The id stored as a subscription's owner for ``user``; None for no or anonymous user."""
    if user is None or getattr(user, "is_authenticated", True) is False:
        return None
    key = sender_key(user)
    if key is user and callable(getattr(user, "get_id", None)):
        key = user.get_id()
    return key


@attrs.define
class ThornState:
    """What ``init_app`` keeps for one Flask app: ``app.extensions["thorn"]``."""

    #: The core app: settings from ``THORN_*`` config keys, dispatcher, subscriber sources.
    core: thorn_core.Thorn
    #: The subscriber model, or None when subscribers are only static.
    model: type[SubscriberMixin] | None
    #: Makes sessions for the subscriber table, or None.
    sessions: SessionFactory | None
    #: The stored-subscriber source added to :attr:`core`, or None.
    source: StoredSubscribers | None
    #: Names the user of the current request, for the subscription API.
    current_user: CurrentUser
    #: The delivery log when it is in this app's database, else None (see ``core.delivery_log``).
    delivery_log: SQLAlchemyDeliveryLog | None = None
    #: The outbox when ``THORN_OUTBOX`` is on (also ``core.outbox``), else None.
    outbox: SQLAlchemyOutbox | None = None

    def session(self) -> Session:
        """A new session for the subscriber table.

        Raises:
            ImproperlyConfigured: the extension was given no database.
        """
        if self.sessions is None or self.model is None:
            raise ImproperlyConfigured(
                "Thorn has no subscriber database: pass Thorn(app, db=db) for Flask-SQLAlchemy "
                "or Thorn(app, session_factory=sessionmaker(engine))"
            )
        return self.sessions()

    def user_id(self) -> Any:
        """The id of the current user, or None when nobody is logged in."""
        return user_key(self.current_user())


def get_state(app: flask.Flask | None = None) -> ThornState:
    """The Thorn state of ``app`` (the current Flask app by default).

    Raises:
        ImproperlyConfigured: ``Thorn.init_app`` was not called for the app.
    """
    app = app if app is not None else flask.current_app
    state = app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, ThornState):
        raise ImproperlyConfigured(f"Thorn is not set up on {app!r}: call Thorn(app) or init_app")
    return state


def _context_thorn() -> thorn_core.Thorn | None:
    """The core app of the active Flask application context (for ``thorn_core.current_app``)."""
    if not flask.has_app_context():
        return None
    state = flask.current_app.extensions.get(EXTENSION_KEY)
    return state.core if isinstance(state, ThornState) else None


def _flask_sqlalchemy_sessions(
    db: SQLAlchemy, app: flask.Flask, model: type[SubscriberMixin]
) -> SessionFactory:
    """Sessions on the engine Flask-SQLAlchemy made for ``app`` and ``model``'s bind key."""
    app_ref = weakref.ref(app)
    bind_key = model.metadata.info.get("bind_key")  # type: ignore[attr-defined]
    engine: Engine | None = None

    def make() -> Session:
        nonlocal engine
        if engine is None:
            owner = app_ref()
            if owner is None:
                raise RuntimeError("the Flask app of this Thorn state is gone")
            if flask.has_app_context() and flask.current_app._get_current_object() is owner:  # type: ignore[attr-defined]
                engine = db.engines[bind_key]
            else:
                with owner.app_context():
                    engine = db.engines[bind_key]
        return Session(engine, expire_on_commit=False)

    return make


def _declare_flask_sqlalchemy_tables(
    db: SQLAlchemy,
    model: type[SubscriberMixin],
    attempt_model: type[DeliveryAttemptMixin] | None,
    outbox_model: type[OutboxEventMixin] | None,
) -> None:
    """Put every table Thorn uses in ``db``'s metadata of the subscriber model's bind key.

    ``db.create_all()`` then creates them and Flask-Migrate's ``flask db migrate`` generates
    them, with the application's tables, from that one metadata.
    """
    bind_key = model.metadata.info.get("bind_key")  # type: ignore[attr-defined]
    metadata = db.metadatas.get(bind_key, db.metadata)
    declare_tables(metadata, model, attempt_model or DeliveryAttempt, outbox_model or OutboxEvent)


def _flask_sqlalchemy_session(db: SQLAlchemy) -> CurrentSession:
    """``db.session`` of the active application context, or None outside one."""

    def current() -> Session | None:
        return db.session() if flask.has_app_context() else None

    return current


def _delivery_log(
    core: thorn_core.Thorn,
    sessions: SessionFactory | None,
    model: type[DeliveryAttemptMixin] | None,
    *,
    stored: bool,
) -> SQLAlchemyDeliveryLog | None:
    """Put the delivery log in the database when it belongs there; return it, or None.

    It belongs there when ``THORN_DELIVERY_LOG`` is unset and subscribers are stored in
    SQLAlchemy (the attempts then live next to them), or when the setting names
    :class:`SQLAlchemyDeliveryLog` (the core made one with no database: it is bound here).
    """
    log = core.delivery_log
    if core.settings.delivery_log is None:
        if not stored or sessions is None:
            return None
        log = SQLAlchemyDeliveryLog(model or DeliveryAttempt, sessions)
        core.delivery_log = log
        return log
    if not isinstance(log, SQLAlchemyDeliveryLog):
        return None
    if log.sessions is None:
        if sessions is None:
            raise ImproperlyConfigured(
                "THORN_DELIVERY_LOG names SQLAlchemyDeliveryLog, but Thorn has no database: "
                "pass Thorn(app, db=db) or session_factory="
            )
        log.bind(sessions, model)
    return log


class Thorn:
    """Thorn for Flask: ``Thorn(app)``, or ``thorn = Thorn()`` then ``thorn.init_app(app)``.

    Every app gets its own core :class:`thorn_core.Thorn` built from its ``THORN_*`` config
    keys (``THORN_SIGNAL_HONORS_TRANSACTION`` defaults to True here: model events are sent
    after commit), its own subscriber source and dispatcher, kept in
    ``app.extensions["thorn"]``. Options given here are defaults for every ``init_app``.

    Args:
        app: the Flask app, or None to call :meth:`init_app` later.
        db: a Flask-SQLAlchemy ``SQLAlchemy`` object holding the subscriber table.
        session_factory: for plain SQLAlchemy: makes sessions (``sessionmaker(engine)``).
        model: the subscriber model (a :class:`~thorn_flask.models.SubscriberMixin` model);
            else ``THORN_SUBSCRIBER_MODEL`` (``"module:Class"``), else the ready
            :class:`~thorn_flask.models.Subscriber` when a database is given.
        current_user: returns the user of the current request for the subscription API
            (Flask-Login's ``current_user`` when omitted and Flask-Login is installed).
        attempt_model: the delivery-log model (a
            :class:`~thorn_flask.models.DeliveryAttemptMixin` model; the ready
            :class:`~thorn_flask.models.DeliveryAttempt` by default).
        outbox_model: the outbox model (an :class:`~thorn_flask.models.OutboxEventMixin`
            model; the ready :class:`~thorn_flask.models.OutboxEvent` by default).
        current_session: with ``THORN_OUTBOX``: returns the application's session, whose
            transaction events are stored in (``db.session`` with ``db=``).

    The delivery log is kept in the database (:class:`~thorn_flask.log.SQLAlchemyDeliveryLog`)
    when subscribers are stored there and ``THORN_DELIVERY_LOG`` is not set, or when
    ``THORN_DELIVERY_LOG`` names that class. With ``THORN_OUTBOX`` the core app's ``outbox``
    is a :class:`~thorn_flask.outbox.SQLAlchemyOutbox`.
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        session_factory: SessionFactory | None = None,
        model: type[SubscriberMixin] | None = None,
        current_user: CurrentUser | None = None,
        attempt_model: type[DeliveryAttemptMixin] | None = None,
        outbox_model: type[OutboxEventMixin] | None = None,
        current_session: CurrentSession | None = None,
    ) -> None:
        self.db = db
        self.session_factory = session_factory
        self.model = model
        self.current_user = current_user
        self.attempt_model = attempt_model
        self.outbox_model = outbox_model
        self.current_session = current_session
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: flask.Flask,
        *,
        db: SQLAlchemy | None = _UNSET,
        session_factory: SessionFactory | None = _UNSET,
        model: type[SubscriberMixin] | None = _UNSET,
        current_user: CurrentUser | None = _UNSET,
        attempt_model: type[DeliveryAttemptMixin] | None = _UNSET,
        outbox_model: type[OutboxEventMixin] | None = _UNSET,
        current_session: CurrentSession | None = _UNSET,
    ) -> ThornState:
        """Set Thorn up on ``app``; keyword arguments override the constructor's for this app.

        Raises:
            ImproperlyConfigured: a ``THORN_*`` key is unknown or has a bad value, both
                ``db`` and ``session_factory`` are given, or the delivery log or outbox
                asked for has no database.
        """
        db = self.db if db is _UNSET else db
        session_factory = self.session_factory if session_factory is _UNSET else session_factory
        model = self.model if model is _UNSET else model
        current_user = self.current_user if current_user is _UNSET else current_user
        attempt_model = self.attempt_model if attempt_model is _UNSET else attempt_model
        outbox_model = self.outbox_model if outbox_model is _UNSET else outbox_model
        current_session = self.current_session if current_session is _UNSET else current_session
        if db is not None and session_factory is not None:
            raise ImproperlyConfigured("give Thorn either db= or session_factory=, not both")
        settings: dict[str, Any] = {f"{PREFIX}SIGNAL_HONORS_TRANSACTION": True}
        settings.update((k, v) for k, v in app.config.items() if k.startswith(PREFIX))
        from thorn_core.catalog import add_schema_deriver

        from .catalog import schema_of

        add_schema_deriver(schema_of)  # before the app reads THORN_EVENT_TYPES
        core = thorn_core.Thorn(settings, set_as_current=False, binding=binding)
        core.debug = app.debug
        if model is None:
            model = self._configured_model(core.settings.subscriber_model)
        if model is None and (db is not None or session_factory is not None):
            model = Subscriber
        if db is not None and model is not None:
            session_factory = _flask_sqlalchemy_sessions(db, app, model)
            _declare_flask_sqlalchemy_tables(db, model, attempt_model, outbox_model)
        source = None
        if model is not None and session_factory is not None:
            source = StoredSubscribers(model, session_factory)
            core.add_subscriber_source(source)
            use_keys(core.settings.secret_keys)
            if not core.settings.secret_keys:
                warn_unencrypted(app.name)
        delivery_log = _delivery_log(
            core, session_factory, attempt_model, stored=source is not None
        )
        outbox = None
        if core.settings.outbox:
            if current_session is None and db is not None:
                current_session = _flask_sqlalchemy_session(db)
            if session_factory is None or current_session is None:
                raise ImproperlyConfigured(
                    "THORN_OUTBOX needs the application's database: pass Thorn(app, db=db), or "
                    "session_factory= and current_session= for plain SQLAlchemy"
                )
            outbox = SQLAlchemyOutbox(outbox_model or OutboxEvent, session_factory, current_session)
            core.outbox = outbox
        old = app.extensions.get(EXTENSION_KEY)
        if isinstance(old, ThornState):
            old.core.close()
        state = ThornState(
            core=core,
            model=model,
            sessions=session_factory,
            source=source,
            current_user=current_user or _flask_login_user,
            delivery_log=delivery_log,
            outbox=outbox,
        )
        app.extensions[EXTENSION_KEY] = state
        from .cli import thorn_cli

        if "thorn" not in app.cli.commands:
            app.cli.add_command(thorn_cli)
        add_app_lookup(_context_thorn)
        return state

    @staticmethod
    def _configured_model(name: str | None) -> type[SubscriberMixin] | None:
        if name is None:
            return None
        try:
            model = import_string(name.replace(":", "."))
        except ImportError as exc:
            raise ImproperlyConfigured(f"THORN_SUBSCRIBER_MODEL {name!r}: {exc}") from exc
        if not (isinstance(model, type) and issubclass(model, SubscriberMixin)):
            raise ImproperlyConfigured(
                f"THORN_SUBSCRIBER_MODEL {name!r} is not a model with thorn_flask's SubscriberMixin"
            )
        return model

    @staticmethod
    def state(app: flask.Flask | None = None) -> ThornState:
        """The state of ``app`` (the current Flask app by default); see :func:`get_state`."""
        return get_state(app)

    @property
    def core(self) -> thorn_core.Thorn:
        """The core app of the current Flask app."""
        return get_state().core

    def __repr__(self) -> str:
        return "<thorn_flask.Thorn>"
