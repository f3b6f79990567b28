"""Events: ``Event('user.created').send(data)`` becomes signed POSTs to its subscribers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from .app import Thorn, current_app
from .delivery import Delivery
from .message import EventMessage
from .patterns import validate_event_name
from .results import Callbacks, SendResult
from .subscribers import Subscriber, sender_key, subscribers_from
from .validators import load_validators

__all__ = ["Event"]


#: Shared by every send without them (read-only).
_NO_CONTEXT: Mapping[str, Any] = MappingProxyType({})
_NO_CALLBACKS = Callbacks()


def _subscribers(value: object, event: str) -> tuple[Subscriber, ...]:
    if value is None:
        return ()
    return tuple(subscribers_from(value, event))


def _headers(value: Mapping[str, str] | None, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(f"{what} must be a mapping of strings to strings, got {value!r}")
    return dict(value)


class Event:
    """A named event that subscribers of a matching pattern receive.

    Options left as None come from the app's settings when the event is sent.

    Args:
        name: dot-separated, such as ``user.created``.
        app: the app to send with; the current app when None.
        timeout: seconds per delivery attempt (``THORN_EVENT_TIMEOUT``).
        retry, retry_max, retry_delay: the retry policy of dispatchers that retry later.
        recipient_validators: replace ``THORN_RECIPIENT_VALIDATORS`` for this event.
        subscribers: URLs, dicts or :class:`Subscriber` objects that always receive this event.
        headers: extra HTTP headers on every delivery of this event.

    Raises:
        InvalidEventName: for a malformed name.
    """

    def __init__(
        self,
        name: str,
        *,
        app: Thorn | None = None,
        timeout: float | None = None,
        retry: bool | None = None,
        retry_max: int | None = None,
        retry_delay: float | None = None,
        recipient_validators: Iterable[Any] | None = None,
        subscribers: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = validate_event_name(name)
        self._app = app
        self.timeout = timeout
        self.retry = retry
        self.retry_max = retry_max
        self.retry_delay = retry_delay
        self.recipient_validators = (
            None if recipient_validators is None else load_validators(recipient_validators)
        )
        self.subscribers = _subscribers(subscribers, self.name)
        self.headers = _headers(headers, "Event headers")

    @property
    def app(self) -> Thorn:
        """The app this event sends with."""
        return self._app or current_app()

    def prepare(
        self,
        data: Any,
        sender: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        context: Mapping[str, Any] | None = None,
        subscribers: Any = None,
        app: Thorn | None = None,
        name: str | None = None,
    ) -> EventMessage:
        """Build the message that ``send`` hands to the dispatcher.

        ``name`` replaces the event's name in the message (model events format theirs per
        instance); it is validated.
        """
        settings = (app or self.app).settings
        send_headers = _headers(headers, "send() headers")
        return EventMessage(
            event=self.name if name is None else validate_event_name(name),
            data=data,
            sender=sender_key(sender),
            headers={**self.headers, **send_headers} if send_headers else self.headers,
            timeout=timeout or self.timeout or settings.event_timeout,
            context=dict(context) if context else _NO_CONTEXT,
            retry=settings.retry if self.retry is None else self.retry,
            retry_max=settings.retry_max if self.retry_max is None else self.retry_max,
            retry_delay=settings.retry_delay if self.retry_delay is None else self.retry_delay,
            recipient_validators=self.recipient_validators,
            subscribers=self.subscribers + _subscribers(subscribers, self.name)
            if subscribers is not None
            else self.subscribers,
        )

    def send(
        self,
        data: Any,
        sender: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        context: Mapping[str, Any] | None = None,
        subscribers: Any = None,
        on_success: Callable[[Delivery], Any] | None = None,
        on_error: Callable[[Delivery, BaseException], Any] | None = None,
        on_timeout: Callable[[Delivery, BaseException], Any] | None = None,
    ) -> SendResult:
        """Send ``data`` to every matching subscriber and return the result.

        Args:
            data: the payload, sent as given (JSON or form-encoded per subscriber).
            sender: the sending user (or its id); owned subscriptions receive only their
                owner's events.
            headers: extra HTTP headers for this send.
            timeout: seconds per delivery attempt for this send.
            context: passed to callable subscribers as keyword arguments.
            subscribers: extra subscribers for this send only.
            on_success, on_error, on_timeout: called once per delivery with its outcome.

        Raises:
            SerializationError: the payload cannot be encoded; nothing is sent.
        """
        app = self.app
        message = self.prepare(
            data,
            sender,
            headers=headers,
            timeout=timeout,
            context=context,
            subscribers=subscribers,
            app=app,
        )
        return self.submit(
            message, on_success=on_success, on_error=on_error, on_timeout=on_timeout, app=app
        )

    def submit(
        self,
        message: EventMessage,
        *,
        on_success: Callable[[Delivery], Any] | None = None,
        on_error: Callable[[Delivery, BaseException], Any] | None = None,
        on_timeout: Callable[[Delivery, BaseException], Any] | None = None,
        app: Thorn | None = None,
    ) -> SendResult:
        """Hand a message built by :meth:`prepare` to the open buffer or the dispatcher.

        Raises:
            SerializationError: the payload cannot be encoded; nothing is sent.
        """
        app = app or self.app
        callbacks = (
            Callbacks(on_success, on_error, on_timeout)
            if on_success or on_error or on_timeout
            else _NO_CALLBACKS
        )
        result = SendResult(message, callbacks=callbacks)
        app.prepare(result)
        buffer = app.active_buffer()
        if buffer is not None:
            buffer.add(result)
        else:
            app.dispatch([result])
        return result

    def __repr__(self) -> str:
        return f"<Event {self.name!r}>"
