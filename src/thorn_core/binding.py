"""The ORM binding of model events, and the generic one on blinker signals for plain objects.

:class:`ModelBinding` is the protocol an adapter implements (``thorn_django`` over Django's
model signals and ``transaction.on_commit``, ``thorn_flask`` over SQLAlchemy events):
model events call it and never see an ORM. :class:`BlinkerBinding` implements it for any
Python object: code sends :data:`created`, :data:`changed`, :data:`deleted` and
:data:`m2m_changed` itself, and :func:`atomic` stands in for a database transaction.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Final, Literal, Protocol, get_args, runtime_checkable

import attrs
from blinker import NamedSignal, Namespace

from .exceptions import ImproperlyConfigured, InvalidModelEvent
from .filters import MISSING

__all__ = [
    "HOOKS",
    "BlinkerBinding",
    "ChangeHandler",
    "HandlerTable",
    "Hook",
    "ModelBinding",
    "ModelChange",
    "Transaction",
    "Trigger",
    "atomic",
    "changed",
    "created",
    "current_transaction",
    "deleted",
    "m2m_change",
    "m2m_changed",
]

#: What happened to an instance.
Hook = Literal["create", "change", "delete", "m2m_add", "m2m_remove", "m2m_clear"]
HOOKS: Final[tuple[Hook, ...]] = get_args(Hook)
#: The many-to-many hooks and the action each names in the send context.
_M2M_ACTIONS: Final[Mapping[Hook, str]] = {
    "m2m_add": "add",
    "m2m_remove": "remove",
    "m2m_clear": "clear",
}
_M2M_HOOKS: Final = tuple(_M2M_ACTIONS)


def _check_trigger(trigger: Trigger, _: attrs.Attribute[Any], field: str | None) -> None:
    if trigger.hook not in HOOKS:
        raise InvalidModelEvent(f"unknown hook {trigger.hook!r}; hooks: {', '.join(HOOKS)}")
    if (trigger.hook in _M2M_HOOKS) != (field is not None):
        raise InvalidModelEvent(
            f"hook {trigger.hook!r} needs the name of a many-to-many field"
            if field is None
            else f"hook {trigger.hook!r} takes no field, got {field!r}"
        )
    if field is not None and (not isinstance(field, str) or not field.isidentifier()):
        raise InvalidModelEvent(f"{field!r} is not a field name")


@attrs.frozen
class Trigger:
    """When a model event is sent: a hook, and for many-to-many hooks the field's name."""

    hook: Hook
    field: str | None = attrs.field(default=None, validator=_check_trigger)


@attrs.frozen
class ModelChange:
    """What a binding hands to a model event's handler when a hook fires."""

    #: The instance as it is now (for ``delete``: as it was).
    instance: Any
    #: The instance before the change (an object or a mapping of field values), given for a
    #: ``change`` hook connected with ``needs_previous=True``; otherwise :data:`MISSING`.
    previous: Any = MISSING
    #: Plain data passed on as the send context (many-to-many hooks: field, action, related).
    context: Mapping[str, Any] = attrs.field(factory=dict)


ChangeHandler = Callable[[ModelChange], None]


def m2m_change(instance: Any, trigger: Trigger, related: list[Any]) -> ModelChange:
    """The change a many-to-many ``trigger`` hands to its handler: the send context names the
    field, the action (``add``, ``remove``, ``clear``) and the ``related`` ids. Every binding
    builds it here, so the context is the same on every ORM.

    Raises:
        KeyError: ``trigger`` is not a many-to-many hook.
    """
    context = {"field": trigger.field, "action": _M2M_ACTIONS[trigger.hook], "related": related}
    return ModelChange(instance, MISSING, context)


class HandlerTable:
    """Which handlers a binding calls for each model, written once for every binding.

    For each model (weakly referenced, so a class can go away), its connected
    ``(trigger, handler)`` pairs in connection order, each with whether it needs the values
    from before a change. Safe to use from several threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: weakref.WeakKeyDictionary[type, dict[tuple[Trigger, ChangeHandler], bool]] = (
            weakref.WeakKeyDictionary()
        )

    def add(
        self, model: type, trigger: Trigger, handler: ChangeHandler, needs_previous: bool
    ) -> bool:
        """Connect ``handler`` for ``trigger`` on ``model``; False when it already was (the
        first connection is kept)."""
        with self._lock:
            handlers = self._models.setdefault(model, {})
            if (trigger, handler) in handlers:
                return False
            handlers[trigger, handler] = needs_previous
            return True

    def remove(self, model: type, trigger: Trigger, handler: ChangeHandler) -> None:
        """Disconnect ``handler`` for ``trigger`` on ``model`` (nothing when it was not)."""
        with self._lock:
            handlers = self._models.get(model)
            if handlers is not None:
                handlers.pop((trigger, handler), None)
                if not handlers:
                    del self._models[model]

    def has(self, model: type, trigger: Trigger, handler: ChangeHandler) -> bool:
        """Whether ``handler`` is connected for ``trigger`` on ``model``."""
        with self._lock:
            return (trigger, handler) in self._models.get(model, {})

    def matching(
        self, model: type, hooks: Collection[str] = HOOKS
    ) -> list[tuple[Trigger, ChangeHandler, bool]]:
        """The ``(trigger, handler, needs_previous)`` of ``model`` whose hook is in ``hooks``,
        in connection order (a copy: handlers may connect others while it is used)."""
        with self._lock:
            handlers = self._models.get(model)
            if not handlers:
                return []
            return [
                (trigger, handler, needs)
                for (trigger, handler), needs in handlers.items()
                if trigger.hook in hooks
            ]

    def needs_previous(self, model: type, hooks: Collection[str] = HOOKS) -> bool:
        """Whether a handler of ``model`` for one of ``hooks`` needs the previous values."""
        return any(needs for _t, _h, needs in self.matching(model, hooks))

    def connected(self, model: type) -> bool:
        """Whether ``model`` has a connected handler."""
        with self._lock:
            return bool(self._models.get(model))

    def __len__(self) -> int:
        """How many models have a connected handler."""
        with self._lock:
            return len(self._models)


@runtime_checkable
class ModelBinding(Protocol):
    """How model events reach an ORM. Adapters implement it; :class:`BlinkerBinding` is generic.

    A binding must:

    - ``connect``: call ``handler`` with a :class:`ModelChange` whenever ``trigger`` happens
      to an instance of ``model`` (exactly that class, as ORM signals do). For a ``change``
      hook with ``needs_previous=True``, fill in ``previous`` with the values from before the
      change (Django: fetch the row in ``pre_save``); with ``needs_previous=False`` do no such
      work. Connecting the same (model, trigger, handler) twice connects it once; receivers
      must not be garbage-collected while connected.
    - ``disconnect``: undo ``connect``.
    - ``on_commit``: run ``callback`` after the current transaction commits, drop it if the
      transaction rolls back, run it at once when no transaction is open.
    - ``reverse``: turn a view name and its arguments into an absolute URL.

    Optionally:

    - ``absolute_url(url) -> str`` makes a relative ``ref`` absolute (the path a model's
      ``get_absolute_url()`` returns; the Django binding prefixes the current site) when
      ``THORN_BASE_URL`` is not set; without it the value is used as is.
    - ``reverse_path(view_name, args, kwargs) -> str`` gives the view's path alone, without
      a host: with ``THORN_BASE_URL`` set, the core joins that URL to it instead of calling
      ``reverse`` (so no request or site is needed).
    """

    def connect(
        self,
        model: type,
        trigger: Trigger,
        handler: ChangeHandler,
        *,
        needs_previous: bool = False,
    ) -> None:
        """Call ``handler`` when ``trigger`` happens to an instance of ``model``."""
        ...

    def disconnect(self, model: type, trigger: Trigger, handler: ChangeHandler) -> None:
        """Stop calling ``handler`` for ``trigger`` on ``model``."""
        ...

    def on_commit(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` after the current transaction commits (at once without one)."""
        ...

    def reverse(self, view_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        """The absolute URL of ``view_name`` with ``args`` and ``kwargs``."""
        ...


_signals = Namespace()

#: An instance was created: ``created.send(Model, instance=obj)``.
created: Final[NamedSignal] = _signals.signal("thorn.model-created")
#: An instance was changed: ``changed.send(Model, instance=obj, previous=old)``. ``previous``
#: is the instance before the change (an object or a mapping of field values); instead of it,
#: ``load_previous=callable`` is called only when a connected event has ``now_`` filters.
changed: Final[NamedSignal] = _signals.signal("thorn.model-changed")
#: An instance was deleted: ``deleted.send(Model, instance=obj)``.
deleted: Final[NamedSignal] = _signals.signal("thorn.model-deleted")
#: A many-to-many field changed: ``m2m_changed.send(Model, instance=obj, field='tags',
#: action='add' | 'remove' | 'clear', related=[ids])``.
m2m_changed: Final[NamedSignal] = _signals.signal("thorn.model-m2m-changed")

_HOOK_SIGNALS: Final[Mapping[Hook, NamedSignal]] = {
    "create": created,
    "change": changed,
    "delete": deleted,
    "m2m_add": m2m_changed,
    "m2m_remove": m2m_changed,
    "m2m_clear": m2m_changed,
}
#: The hooks each signal carries.
_SIGNAL_HOOKS: Final[Mapping[NamedSignal, frozenset[Hook]]] = {
    signal: frozenset(hook for hook, s in _HOOK_SIGNALS.items() if s is signal)
    for signal in set(_HOOK_SIGNALS.values())
}


class Transaction:
    """One :func:`atomic` block: the callbacks waiting for it to commit."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], object]] = []
        self.rolled_back = False

    def on_commit(self, callback: Callable[[], object]) -> None:
        """Queue ``callback`` until the outermost block commits."""
        self.callbacks.append(callback)

    def rollback(self) -> None:
        """Roll back when the block exits: its callbacks are dropped, no exception needed."""
        self.rolled_back = True


_local = threading.local()


def _stack() -> list[Transaction]:
    stack: list[Transaction] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def current_transaction() -> Transaction | None:
    """The innermost :func:`atomic` block open in this thread, if any."""
    stack = _stack()
    return stack[-1] if stack else None


@contextlib.contextmanager
def atomic() -> Iterator[Transaction]:
    """A transaction for code without a database: after-commit callbacks wait for its end.

    When the outermost block exits normally its callbacks run in order; an exception or
    :meth:`Transaction.rollback` drops the callbacks of the block (a nested block's are
    dropped alone, like a savepoint). A callback that raises stops the rest and propagates.
    """
    stack = _stack()
    transaction = Transaction()
    stack.append(transaction)
    try:
        yield transaction
    finally:
        stack.pop()
    if transaction.rolled_back:
        return
    if stack:
        stack[-1].callbacks.extend(transaction.callbacks)
        return
    for callback in transaction.callbacks:
        callback()


Urls = Mapping[str, str] | Callable[[str, Sequence[Any], Mapping[str, Any]], str]


class BlinkerBinding:
    """The generic :class:`ModelBinding`: plain code sends blinker signals for its objects.

    Handlers of one model run in the order they were connected. The binding connects one
    receiver per signal and model (strongly, with the model as sender).

    Args:
        urls: how ``reverse`` builds URLs: a mapping of view name to an absolute URL template
            (``"https://example.com/articles/{uuid}/"``, formatted with the positional and
            keyword arguments), or a callable ``(view_name, args, kwargs) -> url``.
    """

    def __init__(self, urls: Urls | None = None) -> None:
        self.urls = urls
        self._lock = threading.Lock()
        self._handlers = HandlerTable()
        #: model -> signal -> the receiver connected for it.
        self._receivers: weakref.WeakKeyDictionary[type, dict[NamedSignal, Callable[..., None]]] = (
            weakref.WeakKeyDictionary()
        )

    def connect(
        self,
        model: type,
        trigger: Trigger,
        handler: ChangeHandler,
        *,
        needs_previous: bool = False,
    ) -> None:
        """Call ``handler`` when the signal of ``trigger`` is sent with ``model`` as sender."""
        signal = _HOOK_SIGNALS[trigger.hook]
        with self._lock:
            if not self._handlers.add(model, trigger, handler, needs_previous):
                return
            receivers = self._receivers.setdefault(model, {})
            if signal in receivers:
                return
            receiver = receivers[signal] = self._receiver(signal)
        signal.connect(receiver, sender=model, weak=False)

    def disconnect(self, model: type, trigger: Trigger, handler: ChangeHandler) -> None:
        """Undo :meth:`connect`."""
        signal = _HOOK_SIGNALS[trigger.hook]
        with self._lock:
            self._handlers.remove(model, trigger, handler)
            if self._handlers.matching(model, _SIGNAL_HOOKS[signal]):
                return
            receiver = self._receivers.get(model, {}).pop(signal, None)
        if receiver is not None:
            signal.disconnect(receiver, sender=model)

    def _receiver(self, signal: NamedSignal) -> Callable[..., None]:
        """The blinker receiver for ``signal``: turns it into a :class:`ModelChange` per handler."""

        hooks = _SIGNAL_HOOKS[signal]

        def receive(sender: Any, **kwargs: Any) -> None:
            matching = [
                (trigger, handler, needs_previous)
                for trigger, handler, needs_previous in self._handlers.matching(sender, hooks)
                if _matches(trigger, kwargs)
            ]
            if not matching:
                return
            try:
                instance = kwargs["instance"]
            except KeyError:
                raise TypeError(
                    f"send {signal.name} with instance=: signal.send(Model, instance=obj)"
                ) from None
            previous: Any = MISSING
            if any(needs for _t, _h, needs in matching):
                if "load_previous" in kwargs:
                    previous = kwargs["load_previous"]()
                else:
                    previous = kwargs.get("previous", MISSING)
            for trigger, handler, needs_previous in matching:
                if trigger.hook in _M2M_ACTIONS:
                    handler(m2m_change(instance, trigger, list(kwargs.get("related") or ())))
                else:
                    handler(ModelChange(instance, previous if needs_previous else MISSING))

        return receive

    def on_commit(self, callback: Callable[[], object]) -> None:
        """Queue ``callback`` in the open :func:`atomic` block, or run it now."""
        transaction = current_transaction()
        if transaction is None:
            callback()
        else:
            transaction.on_commit(callback)

    def reverse(self, view_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        """Build the URL from ``urls``.

        Raises:
            ImproperlyConfigured: no ``urls`` were given, or none for ``view_name``.
        """
        urls = self.urls
        if callable(urls):
            return urls(view_name, args, kwargs)
        if urls is None or view_name not in urls:
            known = ", ".join(sorted(urls)) if urls else "none"
            raise ImproperlyConfigured(
                f"BlinkerBinding has no URL for view {view_name!r} (known: {known}); "
                "give BlinkerBinding(urls={...})"
            )
        return urls[view_name].format(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<BlinkerBinding urls={self.urls!r}>"


def _matches(trigger: Trigger, kwargs: Mapping[str, Any]) -> bool:
    """Whether a signal's keyword arguments are for ``trigger`` (m2m: its action and field)."""
    action = _M2M_ACTIONS.get(trigger.hook)
    if action is None:
        return True
    return kwargs.get("action") == action and kwargs.get("field") == trigger.field
