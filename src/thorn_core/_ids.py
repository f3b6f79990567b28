"""Message identifiers: unique UUID strings, made in about a microsecond.

An id is a version 8 UUID (RFC 9562): 74 random bits drawn once per process, then a
48-bit counter that starts at a random value. Ids never repeat within a process; a process
with another pid (any fork, whether or not it runs Python's fork hooks, as uWSGI's workers
do not by default) draws a new prefix, and two processes share one with odds of about
2**-74. Every ``send()`` makes an id, so this is cheaper than a random UUID per call.

Not covered: a process restored twice from one memory snapshot (VM cloning, AWS Lambda
SnapStart) keeps its pid and repeats ids; call
:func:`thorn_core.message.reseed_ids` after a restore.
"""

from __future__ import annotations

import itertools
import os
import secrets

__all__ = ["new_id", "reseed"]

_COUNTER_BITS = 48
_COUNTER_MASK = (1 << _COUNTER_BITS) - 1


def _prefix() -> str:
    """The first 20 hex digits of this process's ids, with the UUID's version and variant."""
    h = f"{secrets.randbits(80):020x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-8{h[13:16]}-{variant}{h[17:20]}-"


def reseed() -> None:
    """Draw a new prefix and counter for this process's ids."""
    global _PID, _PREFIX, _COUNTER
    _PREFIX = _prefix()
    _COUNTER = itertools.count(secrets.randbits(_COUNTER_BITS))
    _PID = os.getpid()


_PID = 0
_PREFIX = ""
_COUNTER = itertools.count()
reseed()


def new_id() -> str:
    """A new message id, such as ``3f2a9c1e-07b4-8d21-a9e3-00c4f1a2b3c4``."""
    if os.getpid() != _PID:
        reseed()
    return f"{_PREFIX}{next(_COUNTER) & _COUNTER_MASK:012x}"
