"""Message identifiers: unique UUID strings, made in well under a microsecond.

An id is a version 8 UUID (RFC 9562): 74 random bits drawn once per process, then a
48-bit counter that starts at a random value. Ids never repeat within a process, and two
processes share a prefix with odds of about 2**-74. Every ``send()`` makes one, so this is
cheaper than a random UUID per call; the ids never go on the wire as such (delivery ids are
derived from them with uuid5), so that they count up within a process reveals nothing.
"""

from __future__ import annotations

import itertools
import os
import secrets

__all__ = ["new_id"]

_COUNTER_BITS = 48
_COUNTER_MASK = (1 << _COUNTER_BITS) - 1


def _prefix() -> str:
    """The first 20 hex digits of this process's ids, with the UUID's version and variant."""
    h = f"{secrets.randbits(80):020x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-8{h[13:16]}-{variant}{h[17:20]}-"


def _reseed() -> None:
    """A new prefix and counter: in a forked child, ids must not repeat the parent's."""
    global _PREFIX, _COUNTER
    _PREFIX = _prefix()
    _COUNTER = itertools.count(secrets.randbits(_COUNTER_BITS))


_PREFIX = ""
_COUNTER = itertools.count()
_reseed()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """A new message id, such as ``3f2a9c1e-07b4-8d21-a9e3-00c4f1a2b3c4``."""
    return f"{_PREFIX}{next(_COUNTER) & _COUNTER_MASK:012x}"
