"""The event message a dispatcher receives: everything needed to deliver one sent event."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._ids import new_id
from ._ids import reseed as reseed_ids
from .codecs import JSONCodec
from .exceptions import SerializationError
from .subscribers import Subscriber

__all__ = ["EventMessage", "reseed_ids"]

#: The version of the :meth:`EventMessage.to_dict` format, carried in the ``"v"`` key.
MESSAGE_VERSION = 1


def _plain_json(encode: Callable[[Any], bytes], value: Any, what: str) -> Any:
    """``value`` as plain JSON types: encoded with Thorn's JSON codec, then decoded."""
    try:
        return json.loads(encode(value))
    except (TypeError, ValueError) as exc:  # SerializationError is a TypeError too
        raise SerializationError(f"Cannot carry the {what} in a message: {exc}") from exc


@attrs.frozen(kw_only=True, slots=False)
class EventMessage:
    """One ``send()``: the event name, payload and the options that shape its deliveries.

    ``sender`` holds the sender's identifier (see :func:`~thorn_core.subscribers.sender_key`),
    so the message stays plain data that a queue can carry. Not slotted: a frozen class
    with a ``__dict__`` is built in half the time, and every ``send()`` builds one.
    """

    event: str
    data: Any
    sender: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float
    context: Mapping[str, Any] = attrs.field(factory=dict)
    retry: bool
    retry_max: int
    retry_delay: float
    #: Recipient validators for this event; None means the app's.
    recipient_validators: tuple[Any, ...] | None = None
    #: Subscribers given to the event or to this send, in addition to the app's sources.
    subscribers: tuple[Subscriber, ...] = ()
    id: str = attrs.field(factory=new_id)
    #: The version of the event type this send is of (``Event(version=)``); None: the newest
    #: declared. Subscriptions pinned to another version do not receive it.
    version: str | None = None

    def to_dict(self, encode: Callable[[Any], bytes] | None = None) -> dict[str, Any]:
        """The message as plain JSON data, for a queue to carry; :meth:`from_dict` inverts it.

        ``data``, ``sender`` and ``context`` go through Thorn's JSON codec (``encode``, the
        default :class:`~thorn_core.codecs.JSONCodec` when None) and back, so datetimes,
        Decimals and UUIDs arrive as the strings a JSON delivery would carry. Validators
        travel as their ``to_spec()``, subscribers as :meth:`Subscriber.as_dict`.

        Raises:
            SerializationError: a value has no JSON form, naming what could not be carried.
        """
        encode = encode or JSONCodec().encode
        validators = self.recipient_validators
        return {
            "v": MESSAGE_VERSION,
            "id": self.id,
            "event": self.event,
            "data": _plain_json(encode, self.data, "payload"),
            "sender": _plain_json(encode, self.sender, "sender"),
            "headers": dict(self.headers),
            "timeout": self.timeout,
            "context": _plain_json(encode, dict(self.context), "context"),
            "retry": self.retry,
            "retry_max": self.retry_max,
            "retry_delay": self.retry_delay,
            "recipient_validators": None
            if validators is None
            else [validator.to_spec() for validator in validators],
            "subscribers": _plain_json(
                encode, [subscriber.as_dict() for subscriber in self.subscribers], "subscribers"
            ),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventMessage:
        """Rebuild a message from :meth:`to_dict` output.

        Raises:
            ValueError: an unknown format version or a missing key.
            ImproperlyConfigured: a validator spec that names no known validator.
            InvalidSubscriber: a carried subscriber is invalid.
        """
        from .validators import validator_from_spec

        version = data.get("v")
        if version != MESSAGE_VERSION:
            raise ValueError(
                f"Unknown Thorn message version {version!r} (this Thorn reads {MESSAGE_VERSION})"
            )
        try:
            specs = data["recipient_validators"]
            return cls(
                id=data["id"],
                event=data["event"],
                data=data["data"],
                sender=data["sender"],
                headers=dict(data["headers"]),
                timeout=data["timeout"],
                context=dict(data["context"]),
                retry=data["retry"],
                retry_max=data["retry_max"],
                retry_delay=data["retry_delay"],
                recipient_validators=None
                if specs is None
                else tuple(validator_from_spec(spec) for spec in specs),
                subscribers=tuple(Subscriber.from_dict(s) for s in data["subscribers"]),
                version=data.get("version"),  # absent from the messages of older senders
            )
        except KeyError as exc:
            raise ValueError(f"A Thorn message lacks the key {exc.args[0]!r}") from None
