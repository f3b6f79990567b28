"""Model events on SQLAlchemy: the :class:`SQLAlchemyBinding` of the core's binding protocol.

Changes are tracked from the session: at the end of every flush, the inserted, updated and
deleted instances of connected models (and collection changes recorded by relationship
``append``/``remove`` events) are handed to their model events, whose messages wait for the
session to commit and are dropped when it rolls back.
"""

from __future__ import annotations

import contextvars
import functools
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import urljoin, urlsplit

import flask
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.state import InstanceState

from thorn_core.binding import ChangeHandler, HandlerTable, ModelChange, Trigger, m2m_change
from thorn_core.exceptions import ImproperlyConfigured, InvalidModelEvent
from thorn_core.filters import MISSING
from thorn_core.model_events import ModelEvent, Reverse
from thorn_core.model_events import webhook_model as core_webhook_model

__all__ = ["SQLAlchemyBinding", "binding", "flushing_session", "webhook_model"]

_ModelT = TypeVar("_ModelT", bound=type)

#: ``session.info`` key of the callbacks waiting for the session to commit.
_PENDING: Final = "thorn_flask.on_commit"

#: The session whose flush is handing changes to handlers (``on_commit`` queues on it).
_flushing: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "thorn_flask_flushing", default=None
)


def flushing_session() -> Session | None:
    """The session whose flush is handing changes to model events now, if any."""
    return _flushing.get()


def _noop(*_args: Any) -> None:
    """A ``set`` listener whose only purpose is ``active_history=True``."""


def _identity(obj: Any) -> Any:
    """The primary key of ``obj``: a value, or a tuple for a composite key."""
    key = tuple(inspect(obj).mapper.primary_key_from_instance(obj))
    return key[0] if len(key) == 1 else key


class _Previous:
    """An instance as it was before the flush, read lazily from SQLAlchemy attribute history.

    Mapped attributes give their old value (the current one when unchanged); anything else
    is read from the instance.
    """

    __slots__ = ("_instance", "_state")

    def __init__(self, instance: Any) -> None:
        self._instance = instance
        self._state: InstanceState[Any] = inspect(instance)

    def __getattr__(self, name: str) -> Any:
        prop = self._state.mapper.attrs.get(name)
        if prop is None:
            return getattr(self._instance, name)
        history = self._state.attrs[name].history
        if getattr(prop, "uselist", False):
            return [*history.unchanged, *history.deleted]
        if history.deleted:
            return history.deleted[0]
        if history.unchanged:
            return history.unchanged[0]
        return None if history.added else getattr(self._instance, name)

    def __repr__(self) -> str:
        return f"<previous {self._instance!r}>"


class SQLAlchemyBinding:
    """The :class:`~thorn_core.binding.ModelBinding` for SQLAlchemy models in Flask apps.

    - ``connect`` listens to every :class:`~sqlalchemy.orm.Session` (once, on first use) and,
      for many-to-many hooks, to the relationship's ``append`` and ``remove`` events.
      ``now_`` filters read the values from before the change from attribute history; the
      binding turns on ``active_history`` for the model's columns so that a value set on an
      expired instance still has its old value.
    - ``on_commit`` queues the callback on the session being flushed; it runs after that
      session's outermost transaction commits and is dropped when the transaction (or the
      savepoint it was queued in) rolls back. Outside a flush it runs at once. (With
      ``THORN_OUTBOX`` on, the core writes the event to the outbox during the flush instead,
      in the flushing session's transaction.)
    - ``reverse`` is ``flask.url_for(view_name, _external=True, **kwargs)``: it needs an
      application context, and outside a request ``SERVER_NAME``.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._handlers = HandlerTable()
        self._listening = False
        #: model -> the relationship names whose collection events are listened to.
        self._collections: weakref.WeakKeyDictionary[type, set[str]] = weakref.WeakKeyDictionary()
        self._history: weakref.WeakSet[type] = weakref.WeakSet()
        #: instance state -> collection changes not flushed yet: (field, action, value).
        self._m2m: weakref.WeakKeyDictionary[InstanceState[Any], list[tuple[str, str, Any]]] = (
            weakref.WeakKeyDictionary()
        )

    # -- the protocol ----------------------------------------------------------------------

    def connect(
        self,
        model: type,
        trigger: Trigger,
        handler: ChangeHandler,
        *,
        needs_previous: bool = False,
    ) -> None:
        """Call ``handler`` at the end of a flush that wrote ``trigger`` for a ``model``.

        Raises:
            InvalidModelEvent: ``model`` is not mapped, or a many-to-many field is not one
                of its attributes.
        """
        try:
            mapper: Any = inspect(model)
        except Exception as exc:
            raise InvalidModelEvent(f"{model!r} is not a mapped SQLAlchemy model") from exc
        with self._lock:
            if self._handlers.has(model, trigger, handler):
                return
            if trigger.field is not None:
                self._watch_collection(model, trigger.field)
            if needs_previous and model not in self._history:
                for key in mapper.columns.keys():  # noqa: SIM118 -- iterating gives columns
                    event.listen(getattr(model, key), "set", _noop, active_history=True)
                self._history.add(model)
            self._handlers.add(model, trigger, handler, needs_previous)
            if not self._listening:
                event.listen(Session, "before_flush", self._before_flush)
                event.listen(Session, "after_flush", self._after_flush)
                event.listen(Session, "after_commit", self._after_commit)
                event.listen(Session, "after_soft_rollback", self._after_soft_rollback)
                event.listen(Session, "after_transaction_end", self._after_transaction_end)
                self._listening = True

    def disconnect(self, model: type, trigger: Trigger, handler: ChangeHandler) -> None:
        """Undo :meth:`connect` (listeners stay; they ignore models without handlers)."""
        self._handlers.remove(model, trigger, handler)

    def on_commit(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` after the flushing session commits; at once outside a flush."""
        session = _flushing.get()
        transaction = None
        if session is not None:
            transaction = session.get_nested_transaction() or session.get_transaction()
        if session is None or transaction is None:
            callback()
            return
        session.info.setdefault(_PENDING, []).append((transaction, callback))

    @staticmethod
    def _check_reversible(view_name: str, args: Sequence[Any]) -> flask.Flask:
        """The current Flask app, to reverse ``view_name`` in.

        Raises:
            ImproperlyConfigured: positional arguments, or no application context.
        """
        if args:
            raise ImproperlyConfigured(
                f"Flask endpoints take keyword arguments: model_reverser({view_name!r}, "
                "name='attribute.path'), not positional ones"
            )
        if not flask.has_app_context():
            raise ImproperlyConfigured(
                f"reversing {view_name!r} needs a Flask application context: commit inside "
                "a request or `with app.app_context():`"
            )
        app: flask.Flask = flask.current_app._get_current_object()  # type: ignore[attr-defined]
        return app

    def reverse(self, view_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        """``url_for(view_name, _external=True, **kwargs)`` in the current Flask app.

        Raises:
            ImproperlyConfigured: positional arguments (Flask endpoints take keywords), no
                application context, or no request and no ``SERVER_NAME``.
            werkzeug.routing.BuildError: the endpoint or its arguments do not match.
        """
        self._check_reversible(view_name, args)
        try:
            return flask.url_for(view_name, _external=True, **kwargs)
        except RuntimeError as exc:
            raise ImproperlyConfigured(
                f"cannot build an external URL for {view_name!r} outside a request: set "
                f"SERVER_NAME (and PREFERRED_URL_SCHEME) in the Flask config ({exc})"
            ) from exc

    def reverse_path(self, view_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        """The path of ``view_name`` with ``kwargs`` under ``APPLICATION_ROOT``, without a host:
        with ``THORN_BASE_URL`` the core joins it, so no request or ``SERVER_NAME`` is needed.

        Raises:
            ImproperlyConfigured: positional arguments, or no application context.
            werkzeug.routing.BuildError: the endpoint or its arguments do not match.
        """
        app = self._check_reversible(view_name, args)
        adapter = app.url_map.bind("localhost", script_name=app.config["APPLICATION_ROOT"])
        return adapter.build(view_name, dict(kwargs))

    def absolute_url(self, url: str) -> str:
        """Make a ``get_absolute_url()`` path absolute: the request's host, else ``SERVER_NAME``."""
        if urlsplit(url).scheme:
            return url
        if flask.has_request_context():
            return urljoin(flask.request.host_url, url)
        if flask.has_app_context():
            config = flask.current_app.config
            server = config.get("SERVER_NAME")
            if server:
                return urljoin(f"{config.get('PREFERRED_URL_SCHEME', 'http')}://{server}/", url)
        return url

    # -- collection events -----------------------------------------------------------------

    def _watch_collection(self, model: type, field: str) -> None:
        fields = self._collections.setdefault(model, set())
        if field in fields:
            return
        attribute = getattr(model, field, None)
        if attribute is None:
            raise InvalidModelEvent(f"{model.__qualname__} has no relationship {field!r}")
        event.listen(attribute, "append", functools.partial(self._record, field, "add"), raw=True)
        event.listen(
            attribute, "remove", functools.partial(self._record, field, "remove"), raw=True
        )
        fields.add(field)

    def _record(
        self, field: str, action: str, state: InstanceState[Any], value: Any, _initiator: Any
    ) -> None:
        with self._lock:
            self._m2m.setdefault(state, []).append((field, action, value))

    def _collection_changes(
        self, state: InstanceState[Any]
    ) -> Iterable[tuple[str, str, list[Any]]]:
        """The net changes of ``state``'s collections: (field, add|remove|clear, related)."""
        with self._lock:
            recorded = self._m2m.pop(state, None)
        if not recorded:
            return []
        nets: dict[str, dict[int, tuple[str, Any]]] = {}
        for field, action, value in recorded:
            net = nets.setdefault(field, {})
            previous = net.pop(id(value), None)
            if previous is None or previous[0] == action:
                net[id(value)] = (action, value)
        found: list[tuple[str, str, list[Any]]] = []
        for field, net in nets.items():
            added = [_identity(v) for a, v in net.values() if a == "add"]
            removed = [_identity(v) for a, v in net.values() if a == "remove"]
            if added:
                found.append((field, "m2m_add", added))
            if removed:
                found.append((field, "m2m_remove", removed))
                if not getattr(state.obj(), field):
                    found.append((field, "m2m_clear", removed))
        return found

    # -- session events --------------------------------------------------------------------

    def _connected(self, obj: Any, hook: str) -> list[tuple[Trigger, ChangeHandler, bool]]:
        return self._handlers.matching(type(obj), (hook,))

    def _before_flush(self, session: Session, _context: Any, _instances: Any) -> None:
        """Load expired instances about to be deleted, while their rows still exist."""
        for obj in list(session.deleted):
            if inspect(obj).expired_attributes and self._connected(obj, "delete"):
                session.refresh(obj)

    def _after_flush(self, session: Session, _context: Any) -> None:
        """Hand the flushed changes to their handlers (history is still the pre-flush one)."""
        if not len(self._handlers):
            return
        calls: list[tuple[ChangeHandler, ModelChange]] = []
        for obj in list(session.new):
            calls.extend((h, ModelChange(obj)) for _t, h, _n in self._connected(obj, "create"))
        for obj in list(session.dirty):
            connected = self._connected(obj, "change")
            if connected and session.is_modified(obj, include_collections=False):
                previous = _Previous(obj)
                calls.extend(
                    (h, ModelChange(obj, previous if needs else MISSING))
                    for _t, h, needs in connected
                )
        for obj in list(session.deleted):
            calls.extend((h, ModelChange(obj)) for _t, h, _n in self._connected(obj, "delete"))
        if self._m2m:
            for obj in [*session.new, *session.dirty]:
                for field, hook, related in self._collection_changes(inspect(obj)):
                    calls.extend(
                        (h, m2m_change(obj, t, related))
                        for t, h, _n in self._connected(obj, hook)
                        if t.field == field
                    )
        if not calls:
            return
        token = _flushing.set(session)
        try:
            for handler, change in calls:
                handler(change)
        finally:
            _flushing.reset(token)

    def _after_commit(self, session: Session) -> None:
        """Run the waiting callbacks when the outermost transaction commits."""
        if session.get_nested_transaction() is not None:
            return  # a savepoint was released; its callbacks wait for the outermost commit
        pending = session.info.pop(_PENDING, None)
        for _transaction, callback in pending or ():
            callback()

    def _after_soft_rollback(self, session: Session, previous: SessionTransaction) -> None:
        """Drop the callbacks queued in the rolled-back transaction or savepoint."""
        pending = session.info.get(_PENDING)
        if pending:
            session.info[_PENDING] = [
                (tx, callback) for tx, callback in pending if not _within(tx, previous)
            ]
        if previous.parent is None and self._m2m:
            with self._lock:
                for state in list(self._m2m):
                    if state.session_id in (None, session.hash_key):
                        del self._m2m[state]

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        """Forget whatever still waits when the outermost transaction ends (closed unfinished)."""
        if transaction.parent is None:
            session.info.pop(_PENDING, None)

    def __repr__(self) -> str:
        return f"<SQLAlchemyBinding models={len(self._handlers)}>"


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


#: The binding every Flask app's Thorn uses; models connect through it.
binding: Final = SQLAlchemyBinding()


def webhook_model(
    model: _ModelT | None = None,
    /,
    *,
    sender_field: str | None = None,
    reverse: Reverse | None = None,
    **events: ModelEvent | None,
) -> Any:
    """:func:`thorn_core.webhook_model` connected through the SQLAlchemy :data:`binding`.

    Use it on SQLAlchemy models: the core's decorator connects through the binding of the
    current app, which outside a Flask app (at import time) is the generic one.
    """
    decorate = core_webhook_model(
        sender_field=sender_field, reverse=reverse, binding=binding, **events
    )
    return decorate if model is None else decorate(model)
