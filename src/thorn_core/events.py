"""Events: ``Event('user.created').send(data)`` becomes signed POSTs to its subscribers."""

from __future__ import annotations

import re
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


#: An HTTP header name (RFC 9110 token).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Headers Thorn sets itself; an extra header may not replace or shadow them.
_RESERVED = ("hook-", "webhook-", "content-type", "content-length", "host", "transfer-encoding")


def _headers(value: Mapping[str, str] | None, what: str) -> dict[str, str]:
    """Check extra headers at the call site: valid names and values, none of Thorn's own.

    Raises:
        TypeError: not a mapping of strings.
        ValueError: a malformed name, a value with a line break, or a reserved name.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(f"{what} must be a mapping of strings to strings, got {value!r}")
    for name, header in value.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{what}: {name!r} is not a valid header name")
        if any(c in header for c in "\r\n\0"):
            raise ValueError(f"{what}: the value of {name!r} contains a line break or NUL")
        lowered = name.lower()
        if lowered.startswith(_RESERVED[:2]) or lowered in _RESERVED[2:]:
            raise ValueError(f"{what}: {name!r} is set by Thorn and cannot be given")
    return dict(value)


def _merge_headers(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``base`` updated by ``extra``, names compared without case (the later one wins)."""
    replaced = {name.lower() for name in extra}
    merged = {k: v for k, v in base.items() if k.lower() not in replaced}
    merged.update(extra)
    return merged


def _option(value: Any, name: str, *, kind: str) -> Any:
    """Check an event or send option; None means "from the settings".

    Raises:
        TypeError: the value is of the wrong kind, naming the option.
    """
    if value is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {
        "positive": number and value > 0,
        "non-negative": number and value >= 0,
        "count": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "flag": isinstance(value, bool),
    }[kind]
    if not ok:
        expected = {
            "positive": "a positive number of seconds",
            "non-negative": "a number of seconds >= 0",
            "count": "a whole number >= 0",
            "flag": "True or False",
        }[kind]
        raise TypeError(f"{name} must be {expected} or None, got {value!r}")
    return value


class Event:
    """A named event that subscribers of a matching pattern receive.

    Options left as None come from the app's settings when the event is sent.

    Args:
        name: dot-separated, such as ``user.created``.
        app: the app to send with; the current app when None.
        timeout: seconds per delivery attempt (``THORN_EVENT_TIMEOUT``).
        retry: whether dispatchers that retry later retry this event (``THORN_RETRY``).
        retry_max: retries at most (``THORN_RETRY_MAX``).
        retry_delay: seconds before the first retry (``THORN_RETRY_DELAY``).
        recipient_validators: replace ``THORN_RECIPIENT_VALIDATORS`` for this event.
        subscribers: URLs, dicts or :class:`Subscriber` objects that always receive this event.
        headers: extra HTTP headers on every delivery of this event.
        version: the version of the event type (``app.event_type``) its payloads must keep;
            the newest declared one when None.
        **v1_options: Thorn 1.x's ``request_data`` and ``allow_keepalive``, deprecated (see
            :func:`thorn_core.v1.event_options`).

    Raises:
        InvalidEventName: for a malformed name.
        LegacyOptionError: for ``dispatcher=`` or another option Thorn 2 does not take.
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
        version: str | None = None,
        **v1_options: Any,
    ) -> None:
        self.name = validate_event_name(name)
        if version is not None and not isinstance(version, str):
            raise TypeError(f"version must be a str or None, got {version!r}")
        #: The event type version payloads are judged against (the newest when None).
        self.version = version
        request_data: Mapping[str, Any] | None = None
        v1_headers: dict[str, str] = {}
        if v1_options:
            from .v1 import event_options  # Thorn 1.x forms only: not at import time

            request_data, v1_headers = event_options(v1_options, self.name)
        #: Thorn 1.x's ``request_data``: merged into the body of every send (deprecated).
        self.request_data = request_data
        self._app = app
        self.timeout = _option(timeout, "timeout", kind="positive")
        self.retry = _option(retry, "retry", kind="flag")
        self.retry_max = _option(retry_max, "retry_max", kind="count")
        self.retry_delay = _option(retry_delay, "retry_delay", kind="non-negative")
        self.recipient_validators = (
            None if recipient_validators is None else load_validators(recipient_validators)
        )
        self.subscribers = _subscribers(subscribers, self.name)
        self.headers = _headers(headers, "Event headers")
        if v1_headers:
            self.headers = _merge_headers(v1_headers, self.headers)

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
        instance); it is validated unless it is the event's own (valid) name.
        """
        app = app or self.app
        settings = app.settings
        # Options left out (the common case) cost no call.
        message_headers = self.headers
        if headers is not None:
            send_headers = _headers(headers, "send() headers")
            if send_headers:
                message_headers = _merge_headers(message_headers, send_headers)
        if timeout is not None:
            timeout = _option(timeout, "timeout", kind="positive")
        if self.request_data is not None:
            from .v1 import merge_request_data

            data = merge_request_data(self.name, self.request_data, data)
        message = EventMessage(
            event=self.name if name is None or name == self.name else validate_event_name(name),
            data=data,
            sender=sender if sender is None else sender_key(sender),
            headers=message_headers,
            timeout=timeout or self.timeout or settings.event_timeout,
            context=dict(context) if context else _NO_CONTEXT,
            retry=settings.retry if self.retry is None else self.retry,
            retry_max=settings.retry_max if self.retry_max is None else self.retry_max,
            retry_delay=settings.retry_delay if self.retry_delay is None else self.retry_delay,
            recipient_validators=self.recipient_validators,
            subscribers=self.subscribers
            if subscribers is None
            else self.subscribers + _subscribers(subscribers, self.name),
            version=self.version,
        )
        if app.catalog:  # declared types: judge the payload before anything goes out
            app.check_payload(message, self.version)
        return message

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
            on_success: called with each delivery that succeeded.
            on_error: called with each delivery that failed, and its exception.
            on_timeout: called with each delivery that timed out, and its exception
                (``on_error`` gets them when None).

        Raises:
            SerializationError: the payload cannot be encoded; nothing is sent.
            PayloadValidationError: the payload breaks its event type's schema and
                ``THORN_VALIDATE_PAYLOADS`` is "raise"; nothing is sent.
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
        store: bool = True,
    ) -> SendResult:
        """Hand a message built by :meth:`prepare` to the outbox, the open buffer or the
        dispatcher. ``store=False`` skips the outbox (a model-event hook tried it already).

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
        if store and app.outbox is not None and app.store(message):
            # Stored in the open transaction, dispatched by the relay after commit. (The
            # outbox test first spares the common send without one a call.)
            result.state = "stored"
            return result
        with app.telemetry.send(message, app) as span:
            app.prepare(result)
            buffer = app.active_buffer()
            if buffer is not None:
                buffer.add(result)
            else:
                app.dispatch([result])
            span.finish(result)
        return result

    def __repr__(self) -> str:
        return f"<Event {self.name!r}>"
