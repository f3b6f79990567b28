"""The ``capture`` dispatcher: records every sent event, with assertion helpers, and sends nothing.

Choose it with ``THORN_DISPATCHER = "capture"`` in tests (the pytest plugin's
``captured_events`` fixture does it for you), then assert on ``app.dispatcher.captured``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..fanout import plan_deliveries
from ..patterns import matches

if TYPE_CHECKING:
    from ..app import Thorn
    from ..delivery import DeliveryRequest
    from ..message import EventMessage
    from ..results import SendResult

__all__ = ["CaptureDispatcher", "CapturedEvent", "CapturedEvents"]

_UNSET: Any = object()


class CapturedEvent:
    """One sent event as the capture dispatcher recorded it.

    ``requests`` are the signed requests the subscribers would have received (subscribers
    looked up, payload encoded, headers signed; no connection made). They are computed on
    first access, so a test that never asks needs no subscriber store.
    """

    def __init__(self, app: Thorn, result: SendResult) -> None:
        self.app = app
        self.result = result
        self._requests: tuple[DeliveryRequest, ...] | None = None

    @property
    def message(self) -> EventMessage:
        """The event message the dispatcher was given."""
        return self.result.message

    @property
    def name(self) -> str:
        """The event name."""
        return self.message.event

    @property
    def data(self) -> Any:
        """The payload, as given to ``send()``."""
        return self.message.data

    @property
    def sender(self) -> Any:
        """The sender's identifier (an id, or the ``pk``/``id`` of the object sent)."""
        return self.message.sender

    @property
    def headers(self) -> Mapping[str, str]:
        """The extra headers of the event and of this send."""
        return self.message.headers

    @property
    def requests(self) -> tuple[DeliveryRequest, ...]:
        """The signed requests each matching subscriber would have received."""
        if self._requests is None:
            self._requests = plan_deliveries(self.app, self.message).requests
        return self._requests

    @property
    def urls(self) -> list[str]:
        """The URLs the event would have been delivered to."""
        return [request.subscriber.url for request in self.requests]

    def __repr__(self) -> str:
        return f"<CapturedEvent {self.name!r} data={self.data!r}>"


def _describe(events: Sequence[CapturedEvent]) -> str:
    if not events:
        return "no event was sent"
    return "sent: " + ", ".join(f"{e.name} {e.data!r}" for e in events)


class CapturedEvents(Sequence[CapturedEvent]):
    """The events a :class:`CaptureDispatcher` recorded, oldest first, with assertions.

    Event names given to the helpers may be subscription patterns (``user.*``, ``*``).
    """

    def __init__(self) -> None:
        self._events: list[CapturedEvent] = []
        self._lock = threading.Lock()

    def _add(self, event: CapturedEvent) -> None:
        with self._lock:
            self._events.append(event)

    def __getitem__(self, index: Any) -> Any:
        return self._snapshot()[index]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[CapturedEvent]:
        return iter(self._snapshot())

    def _snapshot(self) -> list[CapturedEvent]:
        with self._lock:
            return list(self._events)

    @property
    def names(self) -> list[str]:
        """The names of the captured events, in the order they were sent."""
        return [event.name for event in self._snapshot()]

    def clear(self) -> None:
        """Forget every captured event."""
        with self._lock:
            self._events.clear()

    def matching(
        self, name: str = "*", *, data: Any = _UNSET, sender: Any = _UNSET
    ) -> list[CapturedEvent]:
        """The captured events whose name matches ``name`` and, if given, ``data`` and ``sender``.

        Raises:
            InvalidPattern: ``name`` is not a valid event name or pattern.
        """
        return [
            event
            for event in self._snapshot()
            if matches(name, event.name)
            and (data is _UNSET or event.data == data)
            and (sender is _UNSET or event.sender == sender)
        ]

    def assert_sent(
        self,
        name: str = "*",
        *,
        data: Any = _UNSET,
        sender: Any = _UNSET,
        count: int | None = None,
    ) -> CapturedEvent:
        """Assert that an event matching ``name`` (and ``data``, ``sender``) was sent.

        Returns the last matching event. With ``count``, exactly that many must match.

        Raises:
            AssertionError: naming what was sent instead.
        """
        found = self.matching(name, data=data, sender=sender)
        wanted = name if data is _UNSET else f"{name} with data {data!r}"
        if sender is not _UNSET:
            wanted += f" from sender {sender!r}"
        if count is not None and len(found) != count:
            raise AssertionError(
                f"expected {count} event(s) {wanted}, found {len(found)}; "
                f"{_describe(self._snapshot())}"
            )
        if not found:
            raise AssertionError(f"no event {wanted} was sent; {_describe(self._snapshot())}")
        return found[-1]

    def assert_not_sent(self, name: str = "*") -> None:
        """Assert that no event matching ``name`` was sent.

        Raises:
            AssertionError: listing the matching events.
        """
        found = self.matching(name)
        if found:
            raise AssertionError(f"expected no event {name}; {_describe(found)}")

    def assert_nothing_sent(self) -> None:
        """Assert that no event at all was sent.

        Raises:
            AssertionError: listing the events.
        """
        self.assert_not_sent("*")

    def __repr__(self) -> str:
        return f"<CapturedEvents {self.names!r}>"


class CaptureDispatcher:
    """Records each sent event in :attr:`captured` and makes no HTTP request.

    The payload is still checked at ``send()`` (it must encode as JSON), so bad input fails
    as it would with a real dispatcher. Each result is marked ``queued``.
    """

    def __init__(self, app: Thorn) -> None:
        self.app = app
        self.captured = CapturedEvents()

    def dispatch(self, results: Sequence[SendResult]) -> None:
        """Record every result; nothing is looked up or sent."""
        for result in results:
            result.state = "queued"
            self.captured._add(CapturedEvent(self.app, result))

    def close(self) -> None:
        """Nothing to release; the captured events stay readable."""
