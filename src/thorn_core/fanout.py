"""Turn one event message into signed delivery requests: resolve, serialize once, sign once."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import attrs

from ._version import __version__
from .delivery import Delivery, DeliveryRequest
from .exceptions import SerializationError
from .message import EventMessage
from .signing import hook_hmac_secret, standard_webhooks_headers
from .subscribers import Subscriber
from .targeting import select_subscribers

if TYPE_CHECKING:
    from .app import Thorn

__all__ = [
    "NOTHING_TO_SEND",
    "USER_AGENT",
    "Plan",
    "delivery_id_for",
    "encode_body",
    "no_codec_delivery",
    "plan_deliveries",
    "resolve_subscribers",
    "signed_request",
    "signing_failure",
    "unsent_delivery",
]

USER_AGENT = f"thorn-webhooks/{__version__}"
#: Seconds a signed plan is sent as it is; an older one is signed again before sending.
FRESH_FOR = 30.0


@attrs.frozen
class Plan:
    """The signed requests of one message, and the deliveries that failed before sending."""

    requests: tuple[DeliveryRequest, ...]
    failed: tuple[Delivery, ...] = ()
    #: When the requests were signed (``webhook-timestamp``), in seconds since the epoch.
    signed_at: int = attrs.field(factory=lambda: int(time.time()))

    def fresh(self, app: Thorn, message: EventMessage, max_age: float = FRESH_FOR) -> Plan:
        """This plan, re-signed with a current timestamp if it was signed over ``max_age``
        seconds ago (a buffer held it): receivers refuse stale Standard Webhooks timestamps.
        Delivery ids and bodies stay the same."""
        now = int(time.time())
        if not self.requests or now - self.signed_at <= max_age:
            return self
        requests = tuple(
            signed_request(
                app,
                message,
                r.subscriber,
                r.body,
                r.id,
                timestamp=now,
                hook_hmac=r.headers.get("Hook-HMAC"),  # none for an ed25519 subscriber
            )
            for r in self.requests
        )
        return Plan(requests, self.failed, now)


#: The plan of a message nobody subscribes to.
NOTHING_TO_SEND = Plan((), (), 0)


#: Namespace of delivery ids, derived from the message id and the subscriber's uuid.
_DELIVERY_NAMESPACE = uuid.UUID("0b7c5f47-58a4-4a53-9d0e-2b8f6f3f1c2e")


def delivery_id_for(message: EventMessage, subscriber: Subscriber) -> str:
    """The delivery id of ``message`` to ``subscriber``.

    Derived rather than random: a message dispatched twice (a worker died before
    acknowledging it, an outbox relay crashed before marking it done) makes the same
    ``Hook-Delivery`` ids, which receivers deduplicate on.
    """
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, f"{message.id} {subscriber.uuid}"))


def resolve_subscribers(app: Thorn, message: EventMessage) -> list[Subscriber]:
    """Every active subscriber of a message: the app's sources, then its own, each once;
    those whose version pin or payload filter refuses the message are left out."""
    candidates = app.subscribers_for(message.event, message.sender, message.context)
    if message.subscribers:
        candidates = [*candidates, *message.subscribers]
    elif not candidates:
        return []
    seen: set[uuid.UUID] = set()
    found: list[Subscriber] = []
    for subscriber in candidates:
        if subscriber.uuid in seen or not subscriber.active:
            continue
        seen.add(subscriber.uuid)
        found.append(subscriber)
    return select_subscribers(app, message, found)


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
    if not subscribers:
        app.validate_payload(message.data)
        return NOTHING_TO_SEND
    bodies: dict[str, bytes] = {}
    for subscriber in subscribers:
        content_type = subscriber.content_type
        if content_type not in bodies:
            body = encode_body(app, message, content_type)
            if body is not None:
                bodies[content_type] = body

    signer = app.signer
    timestamp = int(time.time())
    signatures: dict[tuple[str, str, str], str | None] = {}
    requests: list[DeliveryRequest] = []
    failed: list[Delivery] = []
    for subscriber in subscribers:
        delivery_id = delivery_id_for(message, subscriber)
        body = bodies.get(subscriber.content_type)
        if body is None:
            failed.append(no_codec_delivery(message, subscriber, delivery_id))
            continue
        live = subscriber.live_secrets()
        hmac_secret = hook_hmac_secret(live)
        key = (subscriber.hmac_digest, hmac_secret or "", subscriber.content_type)
        try:
            if key in signatures:
                signature = signatures[key]
            else:
                signature = signatures[key] = (
                    None
                    if hmac_secret is None
                    else signer(subscriber.hmac_digest, hmac_secret, body)
                )
            request = signed_request(
                app,
                message,
                subscriber,
                body,
                delivery_id,
                timestamp=timestamp,
                hook_hmac=signature,
                live_secrets=live,
            )
        except Exception as exc:
            failed.append(signing_failure(message, subscriber, delivery_id, exc))
            continue
        requests.append(request)
    return Plan(tuple(requests), tuple(failed), timestamp)


def encode_body(app: Thorn, message: EventMessage, content_type: str) -> bytes | None:
    """The payload of ``message`` encoded for ``content_type``; None when no codec handles it.

    Raises:
        SerializationError: the payload cannot be encoded.
    """
    codec = app.codecs.get(content_type)
    if codec is None:
        return None
    try:
        return codec.encode(message.data)
    except SerializationError:
        raise
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"Cannot encode the payload of {message.event!r} as {content_type}: {exc}"
        ) from exc


def no_codec_delivery(message: EventMessage, subscriber: Subscriber, delivery_id: str) -> Delivery:
    """The failed delivery recorded for a subscriber whose content type has no codec."""
    return unsent_delivery(
        message, subscriber, delivery_id, f"no codec for content type {subscriber.content_type!r}"
    )


def unsent_delivery(
    message: EventMessage,
    subscriber: Subscriber,
    delivery_id: str,
    error: str,
    exception: BaseException | None = None,
) -> Delivery:
    """A delivery that failed before any attempt (no codec, unusable secret, bad payload)."""
    return Delivery(
        id=delivery_id,
        event=message.event,
        subscriber=subscriber,
        ok=False,
        attempts=0,
        error=error,
        exception=exception,
    )


def signing_failure(
    message: EventMessage, subscriber: Subscriber, delivery_id: str, exc: Exception
) -> Delivery:
    """The failed delivery of a subscriber that could not be signed for (an unusable
    secret, a custom ``THORN_HMAC_SIGNER`` that raises): its own failure, never the
    other subscribers'."""
    return unsent_delivery(
        message, subscriber, delivery_id, f"cannot sign the delivery: {exc}", exc
    )


def signed_request(
    app: Thorn,
    message: EventMessage,
    subscriber: Subscriber,
    body: bytes,
    delivery_id: str,
    *,
    timestamp: int | None = None,
    hook_hmac: str | None = None,
    live_secrets: tuple[str, ...] | None = None,
) -> DeliveryRequest:
    """One signed request of ``message`` to ``subscriber`` carrying ``body``.

    A retry calls it again with the same ``delivery_id``: ``Hook-Delivery`` (and
    ``webhook-id``) stay the same, while the Standard Webhooks timestamp and signature are
    fresh, so receivers that reject stale timestamps accept the retry.

    Args:
        timestamp: the ``webhook-timestamp`` (seconds); now when None.
        hook_hmac: a ``Hook-HMAC`` already computed for this body and secret (it does not
            depend on the delivery); computed when None.
        live_secrets: the subscriber's secrets live now (read when None): one
            ``webhook-signature`` entry each, ``Hook-HMAC`` with the newest HMAC one (no
            ``Hook-HMAC`` when there is none).
    """
    if timestamp is None:
        timestamp = int(time.time())
    if live_secrets is None:
        live_secrets = subscriber.live_secrets()
    if hook_hmac is None:
        hmac_secret = hook_hmac_secret(live_secrets)
        if hmac_secret is not None:
            hook_hmac = app.signer(subscriber.hmac_digest, hmac_secret, body)
    headers = {
        "User-Agent": USER_AGENT,
        **message.headers,
        "Hook-Event": message.event,
        "Content-Type": subscriber.content_type,
        "Hook-Delivery": delivery_id,
        "Hook-Subscription": str(subscriber.uuid),
        **({"Hook-HMAC": hook_hmac} if hook_hmac is not None else {}),
        **standard_webhooks_headers(live_secrets, delivery_id, timestamp, body),
    }
    return DeliveryRequest(
        id=delivery_id,
        event=message.event,
        subscriber=subscriber,
        body=body,
        headers=headers,
        timeout=message.timeout,
    )
