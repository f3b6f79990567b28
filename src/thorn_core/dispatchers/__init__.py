"""Dispatchers: the protocol, and the lookup of one by entry-point name or ``module:Class``."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from ..exceptions import ImproperlyConfigured, UnknownDispatcher

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from ..app import Thorn
    from ..results import SendResult

__all__ = ["ENTRY_POINT_GROUP", "Dispatcher", "DispatcherFactory", "available", "resolve"]

ENTRY_POINT_GROUP = "thorn.dispatchers"

#: Built-in dispatchers, used when the package metadata is not installed (a source checkout).
#: The same names are registered in the entry-point group, exactly as a plugin registers one.
_BUILTINS = {
    "default": "thorn_core.dispatchers.default:DefaultDispatcher",
    "disabled": "thorn_core.dispatchers.disabled:DisabledDispatcher",
}


@runtime_checkable
class Dispatcher(Protocol):
    """Delivers sent events. Built-ins and plugins implement it; the app owns one instance.

    A dispatcher class is called with the app (``DispatcherClass(app)``) when the app first
    needs it. ``dispatch`` receives one or more results (several when a buffer flushes) and
    must set each one's ``state``, recording deliveries with ``result.record(app, delivery)``
    when it delivers in-process.

    Optional hooks: ``prepare(result)`` is called at ``send()`` time (also inside
    ``buffer_events``) to check the event and raise for bad input, and may store work for
    ``dispatch`` in ``result.prepared``; without it the app checks that the payload encodes
    as JSON. A classmethod ``check(settings)`` is called when an app is configured with the
    dispatcher, to report configuration errors at start-up.
    """

    def dispatch(self, results: Sequence[SendResult]) -> None:
        """Deliver, queue or drop the events of ``results``."""
        ...

    def close(self) -> None:
        """Release threads, sessions and connections; the app calls it on close."""
        ...


class DispatcherFactory(Protocol):
    """A dispatcher class: called with the app, returns a :class:`Dispatcher`."""

    def __call__(self, app: Thorn) -> Dispatcher: ...


_lock = threading.Lock()
_entry_points: dict[str, list[EntryPoint]] | None = None


def _registered() -> dict[str, list[EntryPoint]]:
    """The ``thorn.dispatchers`` entry points by name, read once on first lookup."""
    global _entry_points
    with _lock:
        if _entry_points is None:
            from importlib.metadata import entry_points

            found: dict[str, list[EntryPoint]] = {}
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                targets = found.setdefault(ep.name, [])
                if all(t.value != ep.value for t in targets):
                    targets.append(ep)
            _entry_points = found
        return _entry_points


def refresh() -> None:
    """Forget the entry points read so far, so that newly installed plugins are seen."""
    global _entry_points
    with _lock:
        _entry_points = None


def available() -> list[str]:
    """The dispatcher names that can be chosen: built-ins and installed plugins."""
    return sorted({*_BUILTINS, *_registered()})


def _import(path: str, *, what: str) -> object:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise UnknownDispatcher(f"{what} {path!r} is not of the form 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownDispatcher(f"{what} {path!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise UnknownDispatcher(f"{what} {path!r}: {module_name!r} has no {attribute!r}") from None


def resolve(name: str | type) -> DispatcherFactory:
    """Find the dispatcher class for ``THORN_DISPATCHER``.

    Looks up an entry-point name (built-ins included), else imports ``module:Class``.

    Raises:
        UnknownDispatcher: naming the unknown value and the known names.
        ImproperlyConfigured: when two plugins register the same name, or a plugin fails to load.
    """
    if isinstance(name, type):
        return cast("DispatcherFactory", name)
    if not isinstance(name, str) or not name:
        raise UnknownDispatcher(f"THORN_DISPATCHER must be a non-empty string, got {name!r}")
    if ":" in name:
        target = _import(name, what="THORN_DISPATCHER")
    else:
        registered = _registered().get(name, [])
        if len(registered) > 1:
            values = ", ".join(sorted(ep.value for ep in registered))
            raise ImproperlyConfigured(
                f"Dispatcher name {name!r} is registered by more than one plugin ({values}); "
                f"choose one with THORN_DISPATCHER='module:Class'"
            )
        if registered:
            try:
                target = registered[0].load()
            except Exception as exc:
                raise ImproperlyConfigured(
                    f"Dispatcher {name!r} ({registered[0].value}) failed to load: {exc}"
                ) from exc
        elif name in _BUILTINS:
            target = _import(_BUILTINS[name], what="built-in dispatcher")
        else:
            raise UnknownDispatcher(
                f"Unknown dispatcher {name!r}; known dispatchers: {', '.join(available())}, "
                f"or give 'module:Class'"
            )
    if not callable(target):
        raise UnknownDispatcher(
            f"Dispatcher {name!r} resolves to {target!r}, which is not callable"
        )
    return cast("DispatcherFactory", target)
