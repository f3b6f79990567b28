"""A test dispatcher: ``THORN_DISPATCHER="tests.core._recording_dispatcher:..."``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class RecordingDispatcher:
    """Keeps every result it is given, marks it ``queued``, and sends nothing."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.dispatched: list[Any] = []
        self.closed = False

    def dispatch(self, results: Sequence[Any]) -> None:
        """Record the results instead of delivering them."""
        for result in results:
            result.state = "queued"
            self.dispatched.append(result)

    def close(self) -> None:
        """Remember that the app closed this dispatcher."""
        self.closed = True


#: Not a dispatcher: resolving it must fail loudly.
NOT_CALLABLE = 42
