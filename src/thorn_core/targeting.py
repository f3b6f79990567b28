"""Subscriptions against the catalog: which subscribers a send reaches beyond its pattern
(payload filters, version pins), and the checks a subscription gets when it is submitted
(strict patterns, declared versions)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .payload_filters import accepts_payload

if TYPE_CHECKING:
    from .app import Thorn
    from .message import EventMessage
    from .subscribers import Subscriber

__all__ = ["MAX_VERSION_LENGTH", "catalog_problems", "select_subscribers", "send_version"]

#: Longest version pin (the ``version`` column; the catalog's versions are as short).
MAX_VERSION_LENGTH = 32


class _EventType(Protocol):
    """What this module reads of a declared event type (``thorn_core.catalog.EventType``)."""

    name: str
    version: str


class _Catalog(Protocol):
    """What this module reads of the app's catalog (``thorn_core.catalog.Catalog``)."""

    def get(self, name: str, version: str | None = None) -> Any: ...

    def matching(self, pattern: str) -> Sequence[Any]: ...

    def types(self) -> Iterable[Any]: ...


def _catalog(app: Thorn) -> _Catalog | None:
    """The app's catalog, or None for an app built without one."""
    catalog: _Catalog | None = getattr(app, "catalog", None)
    return catalog


def send_version(app: Thorn, message: EventMessage) -> str | None:
    """The version of a send: the one the message names, else the version of its event type
    in the app's catalog (the type ``catalog.get(name)`` answers, which its payload is
    checked against); None when the catalog declares no type of that name."""
    if message.version is not None:
        return message.version
    catalog = _catalog(app)
    if catalog is None:
        return None
    declared: _EventType | None = catalog.get(message.event)
    return None if declared is None else declared.version


def select_subscribers(
    app: Thorn, message: EventMessage, subscribers: list[Subscriber]
) -> list[Subscriber]:
    """The ``subscribers`` that want ``message``: a version pin must name the send's version
    (:func:`send_version`) and a payload filter must accept its data. No query: it reads
    only the subscribers already found, and compiled filters are cached."""
    if not any(s.filter is not None or s.version is not None for s in subscribers):
        return subscribers
    version = (
        send_version(app, message) if any(s.version is not None for s in subscribers) else None
    )
    data = message.data
    return [
        s
        for s in subscribers
        if (s.version is None or s.version == version)
        and (s.filter is None or accepts_payload(s, data))
    ]


def catalog_problems(app: Thorn, pattern: str, version: str | None) -> dict[str, list[str]]:
    """Messages by field for a subscription to ``pattern`` (a valid pattern) pinned to
    ``version``: under ``THORN_EVENT_TYPES_STRICT`` the pattern must match a declared event
    type (the message lists the known ones); a version pin must name a declared version of
    a type the pattern matches (without one, a pinned subscription would receive nothing).
    """
    errors: dict[str, list[str]] = {}
    strict = app.settings.event_types_strict
    if not strict and version is None:
        return errors
    catalog = _catalog(app)
    declared: list[_EventType] = list(catalog.matching(pattern)) if catalog is not None else []
    if strict and not declared:
        known = sorted({t.name for t in catalog.types()}) if catalog is not None else []
        listing = ", ".join(known) if known else "none are declared"
        errors["event"] = [f"{pattern!r} matches no declared event type; known types: {listing}"]
    if version is not None and declared and version not in {t.version for t in declared}:
        versions = ", ".join(sorted({f"{t.name} {t.version}" for t in declared}))
        errors["version"] = [
            f"{version!r} is not a declared version of the types {pattern!r} matches: {versions}"
        ]
    elif version is not None and not declared and "event" not in errors:
        errors["version"] = [
            f"{pattern!r} matches no declared event type, so no send has a version to pin"
        ]
    return errors
