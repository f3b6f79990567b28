"""Buffering: collect the events sent inside a block and dispatch them together."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

from .app import Thorn, current_app
from .telemetry import get_logger

if TYPE_CHECKING:
    from .results import SendResult

__all__ = ["EventBuffer", "buffer_events"]

logger = get_logger(__name__)


class EventBuffer:
    """The events buffered by the outermost ``buffer_events`` block of one thread of one app."""

    def __init__(self, app: Thorn, flush_freq: int | None, flush_timeout: float | None) -> None:
        if flush_freq is not None and (isinstance(flush_freq, bool) or flush_freq < 1):
            raise ValueError(f"flush_freq must be a whole number >= 1 or None, got {flush_freq!r}")
        if flush_timeout is not None and not flush_timeout > 0:
            raise ValueError(
                f"flush_timeout must be a positive number or None, got {flush_timeout!r}"
            )
        self.app = app
        self.flush_freq = flush_freq
        self.flush_timeout = flush_timeout
        self.pending: list[SendResult] = []
        self.depth = 0
        self._last_flush = time.monotonic()

    def add(self, result: SendResult) -> None:
        """Buffer one sent event, flushing when ``flush_freq`` or ``flush_timeout`` is reached."""
        result.state = "buffered"
        self.pending.append(result)
        self.maybe_flush()

    def flush(self) -> list[SendResult]:
        """Dispatch every buffered event now; each is taken out first, so none is sent twice."""
        batch, self.pending = self.pending, []
        self._last_flush = time.monotonic()
        if batch:
            self.app.dispatch(batch)
        return batch

    def maybe_flush(self) -> list[SendResult]:
        """Flush if ``flush_freq`` events are waiting or ``flush_timeout`` seconds have passed."""
        if self.flush_freq is not None and len(self.pending) >= self.flush_freq:
            return self.flush()
        if (
            self.flush_timeout is not None
            and self.pending
            and time.monotonic() - self._last_flush >= self.flush_timeout
        ):
            return self.flush()
        return []


class buffer_events:
    """Buffer the events sent in this thread inside the block; dispatch them at its end.

    ``with buffer_events(flush_freq=100) as buf:`` — nested blocks share the outermost buffer
    and it flushes when the outermost block exits. An exception in the block does not discard
    what was already sent: the buffered events are dispatched once, then the exception goes on.
    """

    def __init__(
        self,
        flush_freq: int | None = None,
        flush_timeout: float | None = None,
        app: Thorn | None = None,
    ) -> None:
        self.app = app or current_app()
        self.flush_freq = flush_freq
        self.flush_timeout = flush_timeout
        self._buffer: EventBuffer | None = None

    def __enter__(self) -> EventBuffer:
        buffer = self.app.active_buffer()
        if buffer is None:
            buffer = EventBuffer(self.app, self.flush_freq, self.flush_timeout)
            self.app._set_buffer(buffer)
        buffer.depth += 1
        self._buffer = buffer
        return buffer

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        buffer = self._buffer
        assert buffer is not None
        buffer.depth -= 1
        if buffer.depth:
            return
        self.app._set_buffer(None)
        if exc is None:
            buffer.flush()
            return
        try:
            buffer.flush()
        except Exception:
            logger.exception("Flushing buffered Thorn events failed while %r propagated", exc)
