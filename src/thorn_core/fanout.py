"""Turn one event message into signed delivery requests: resolve, serialize once, sign once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from ._version import __version__
from .delivery import Delivery, DeliveryRequest
from .exceptions import SerializationError
from .message import EventMessage
from .signing import standard_webhooks_headers
from .subscribers import Subscriber

if TYPE_CHECKING:
    from .app import Thorn

__all__ = ["USER_AGENT", "Plan", "plan_deliveries"]

USER_AGENT = f"thorn-webhooks/{__version__}"


@attrs.frozen
class Plan:
    """The requests to send for one message, and the deliveries that failed before sending."""

    message: EventMessage
    requests: tuple[DeliveryRequest, ...]
    failed: tuple[Delivery, ...] = ()


def resolve_subscribers(app: Thorn, message: EventMessage) -> list[Subscriber]:
    """Every active subscriber of a message: the app's sources, then its own, each once."""
    seen: set[uuid.UUID] = set()
    found: list[Subscriber] = []
    candidates: Iterable[Subscriber] = app.subscribers_for(
        message.event, message.sender, message.context
    )
    for subscriber in (*candidates, *message.subscribers):
        if subscriber.uuid in seen or not subscriber.active:
            continue
        seen.add(subscriber.uuid)
        found.append(subscriber)
    return found


def plan_deliveries(
    app: Thorn, message: EventMessage, subscribers: list[Subscriber] | None = None
) -> Plan:
    """Prepare one signed request per subscriber.

    The payload is encoded once per content type and ``Hook-HMAC`` computed once per secret.
    With no subscriber the payload is still encoded as JSON, so bad input fails at ``send()``.

    Raises:
        SerializationError: the payload cannot be encoded; nothing is sent.
    """
    if subscribers is None:
        subscribers = resolve_subscribers(app, message)
    codecs = app.codecs
    if not subscribers:
        app.validate_payload(message.data)
        return Plan(message, ())
    bodies: dict[str, bytes] = {}
    missing: list[Subscriber] = []
    for subscriber in subscribers:
        content_type = subscriber.content_type
        if content_type in bodies:
            continue
        codec = codecs.get(content_type)
        if codec is None:
            missing.append(subscriber)
            continue
        try:
            bodies[content_type] = codec.encode(message.data)
        except SerializationError:
            raise
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"Cannot encode the payload of {message.event!r} as {content_type}: {exc}"
            ) from exc

    signer = app.signer
    timestamp = int(time.time())
    signatures: dict[tuple[str, str, str], str] = {}
    base = {"User-Agent": USER_AGENT, **message.headers, "Hook-Event": message.event}
    requests: list[DeliveryRequest] = []
    failed: list[Delivery] = []
    for subscriber in subscribers:
        delivery_id = str(uuid.uuid4())
        body = bodies.get(subscriber.content_type)
        if body is None:
            failed.append(
                Delivery(
                    id=delivery_id,
                    event=message.event,
                    subscriber=subscriber,
                    ok=False,
                    attempts=0,
                    error=f"no codec for content type {subscriber.content_type!r}",
                )
            )
            continue
        key = (subscriber.hmac_digest, subscriber.hmac_secret, subscriber.content_type)
        signature = signatures.get(key)
        if signature is None:
            signature = signatures[key] = signer(
                subscriber.hmac_digest, subscriber.hmac_secret, body
            )
        headers = {
            **base,
            "Content-Type": subscriber.content_type,
            "Hook-Delivery": delivery_id,
            "Hook-Subscription": str(subscriber.uuid),
            "Hook-HMAC": signature,
            **standard_webhooks_headers(subscriber.hmac_secret, delivery_id, timestamp, body),
        }
        requests.append(
            DeliveryRequest(
                id=delivery_id,
                event=message.event,
                subscriber=subscriber,
                body=body,
                headers=headers,
                timeout=message.timeout,
            )
        )
    return Plan(message, tuple(requests), tuple(failed))
