"""Event names (``user.created``) and the subscription patterns that match them."""

from __future__ import annotations

import functools
import re

from thorn_core.exceptions import InvalidEventName, InvalidPattern

__all__ = [
    "WILDCARD",
    "candidate_patterns",
    "matches",
    "validate_event_name",
    "validate_pattern",
]

#: The wildcard segment: alone it matches every name; first or last it matches a suffix or prefix.
WILDCARD = "*"

# Whitespace (Unicode-aware), C0/C1 control characters and the wildcard are never part of a segment.
_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f-\x9f*]")


def _segment_problem(segment: str) -> str | None:
    """Return why ``segment`` cannot be part of a name, or None if it can."""
    if not segment:
        return "has an empty segment"
    found = _FORBIDDEN.search(segment)
    if found is None:
        return None
    char = found.group()
    if char == WILDCARD:
        return "contains a wildcard '*'"
    if char.isspace():
        return "contains whitespace"
    return f"contains the control character {char!r}"


def _name_problem(name: str) -> str | None:
    """Return why ``name`` is not a valid dot-separated name, or None if it is."""
    if not name:
        return "is empty"
    for segment in name.split("."):
        problem = _segment_problem(segment)
        if problem is not None:
            return problem
    return None


def validate_event_name(name: object) -> str:
    """Return ``name`` if it is a valid event name.

    Raises:
        InvalidEventName: ``name`` is not a str, is empty, has an empty segment, or
            contains whitespace, a control character or a wildcard.
    """
    if not isinstance(name, str):
        raise InvalidEventName(f"event name must be a str, not {type(name).__name__}: {name!r}")
    problem = _name_problem(name)
    if problem is not None:
        raise InvalidEventName(f"event name {name!r} {problem}")
    return name


def _pattern_problem(pattern: str) -> str | None:
    """Return why ``pattern`` is not a valid subscription pattern, or None if it is."""
    if pattern == WILDCARD:
        return None
    if not pattern:
        return "is empty"
    segments = pattern.split(".")
    if "" in segments:
        return "has an empty segment"
    leading = segments[0] == WILDCARD
    trailing = len(segments) > 1 and segments[-1] == WILDCARD
    if leading and trailing:
        return "has both a leading and a trailing wildcard; use one, or '*' alone"
    inner = segments[1:] if leading else segments[:-1] if trailing else segments
    for segment in inner:
        if segment == WILDCARD:
            return "has a wildcard in a middle segment; '*' may only be the first or last segment"
        problem = _segment_problem(segment)
        if problem == "contains a wildcard '*'":
            return f"has a '*' inside the segment {segment!r}; '*' must be a whole segment"
        if problem is not None:
            return problem
    return None


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid subscription pattern.

    Valid patterns are an exact name (``user.created``), a prefix (``user.*``), a
    suffix (``*.created``), or ``*`` alone.

    Raises:
        InvalidPattern: ``pattern`` is not a str or is malformed; the message says why.
    """
    if not isinstance(pattern, str):
        raise InvalidPattern(f"pattern must be a str, not {type(pattern).__name__}: {pattern!r}")
    problem = _pattern_problem(pattern)
    if problem is not None:
        raise InvalidPattern(f"pattern {pattern!r} {problem}")
    return pattern


@functools.lru_cache(maxsize=4096)
def _candidate_patterns(name: str) -> tuple[str, ...]:
    """Validate ``name`` and build its candidate patterns (cached; see `candidate_patterns`)."""
    validate_event_name(name)
    segments = name.split(".")
    count = len(segments)
    prefixes = [".".join(segments[:end]) + ".*" for end in range(1, count)]
    suffixes = ["*." + ".".join(segments[start:]) for start in range(1, count)]
    return (name, WILDCARD, *prefixes, *suffixes)


def candidate_patterns(name: str) -> tuple[str, ...]:
    """Return every pattern that matches the event ``name``, in a deterministic order.

    The exact name, ``*``, then prefixes from the shortest (``a.*``, ``a.b.*``), then
    suffixes from the longest (``*.b.c``, ``*.c``): ``2n`` distinct patterns for ``n``
    segments, so a store can answer with one indexed ``event IN (...)`` query. Results
    are cached, since event names are a small closed set.

    Raises:
        InvalidEventName: ``name`` is not a valid event name.
    """
    try:
        return _candidate_patterns(name)
    except TypeError:  # unhashable, so certainly not a str
        validate_event_name(name)
        raise


def matches(pattern: str, name: str) -> bool:
    """Return True if the subscription ``pattern`` matches the event ``name``.

    Raises:
        InvalidPattern: ``pattern`` is malformed.
        InvalidEventName: ``name`` is malformed.
    """
    validate_pattern(pattern)
    return pattern in candidate_patterns(name)
