"""Attribute paths (``'author.account.user'``): parsed once, read from an instance many times.

Filters (``author__account__user__eq``), ``sender_field`` and :class:`~thorn_core.model_reverser`
all read values from a model instance through this one helper, so they agree on what a path
means: each segment is an attribute (or a key, when the value is a mapping), and a ``None``
met on the way makes the whole path ``None``, as a database join through a null foreign key
would.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from .exceptions import InvalidModelEvent

__all__ = ["AttributePath", "parse_path", "read_path", "resolve_path"]

#: A parsed path: the attribute names from the instance outwards.
AttributePath = tuple[str, ...]


@functools.lru_cache(maxsize=1024)
def _parse_dotted(path: str) -> AttributePath:
    segments = tuple(path.split("."))
    for segment in segments:
        if not segment.isidentifier():
            raise InvalidModelEvent(
                f"attribute path {path!r} is malformed: {segment!r} is not an attribute name"
                if segment
                else f"attribute path {path!r} has an empty segment"
            )
    return segments


def parse_path(path: str | Sequence[str]) -> AttributePath:
    """Return ``path`` (``'a.b.c'`` or ``('a', 'b', 'c')``) as a tuple of attribute names.

    Raises:
        InvalidModelEvent: the path is empty, not a string, or a segment is not an identifier.
    """
    if isinstance(path, str):
        return _parse_dotted(path)
    if isinstance(path, Sequence) and path and all(isinstance(s, str) for s in path):
        return _parse_dotted(".".join(path))
    raise InvalidModelEvent(f"an attribute path must be a dotted string, got {path!r}")


def resolve_path(obj: Any, path: str | Sequence[str]) -> Any:
    """Read ``path`` from ``obj``: ``resolve_path(a, 'author.name')`` is ``a.author.name``.

    Mappings are read by key. A ``None`` on the way gives ``None``.

    Raises:
        AttributeError: an object on the way has no such attribute (a typo is not hidden).
        KeyError: a mapping on the way has no such key.
    """
    return read_path(obj, parse_path(path))


def read_path(obj: Any, path: AttributePath) -> Any:
    """:func:`resolve_path` for a path already parsed by :func:`parse_path`: no parsing per
    read (filters hold theirs parsed).

    Raises:
        AttributeError: an object on the way has no such attribute.
        KeyError: a mapping on the way has no such key.
    """
    value = obj
    for name in path:
        if value is None:
            return None
        value = value[name] if isinstance(value, Mapping) else getattr(value, name)
    return value
