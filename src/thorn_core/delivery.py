"""One delivery: a signed request to one subscriber, its attempt, and the recorded outcome."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .exceptions import DeliveryConnectionError, DeliveryFailed, DeliveryTimeout, RecipientRefused
from .subscribers import Subscriber
from .transport import Transport
from .validators import Resolver, system_resolver, validate_recipient

__all__ = ["Delivery", "DeliveryRequest", "deliver", "is_retryable_status"]

#: Statuses worth another attempt later: the receiver may be overloaded or restarting.
_RETRYABLE_STATUSES = frozenset({408, 429})


def is_retryable_status(status_code: int) -> bool:
    """Whether a non-2xx status is worth retrying (408, 429 and every 5xx)."""
    return status_code in _RETRYABLE_STATUSES or status_code >= 500


@attrs.frozen(kw_only=True)
class DeliveryRequest:
    """A prepared delivery: the exact body and headers one subscriber will receive."""

    id: str
    event: str
    subscriber: Subscriber
    body: bytes = attrs.field(repr=False)
    headers: Mapping[str, str] = attrs.field(repr=False)
    timeout: float


@attrs.frozen(kw_only=True)
class Delivery:
    """The outcome of delivering one event to one subscriber.

    ``ok`` is True for a 2xx answer. ``retryable`` says whether a later attempt could succeed
    (timeouts, connection errors, 408, 429, 5xx). ``attempts`` counts HTTP attempts made;
    a URL refused by the recipient validators makes none.
    """

    id: str
    event: str
    subscriber: Subscriber
    ok: bool
    status_code: int | None = None
    error: str | None = None
    attempts: int = 1
    duration: float = 0.0
    retryable: bool = False
    timed_out: bool = False
    response_headers: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False)
    response_body: bytes = attrs.field(default=b"", repr=False, eq=False)
    exception: BaseException | None = attrs.field(default=None, repr=False, eq=False)


def deliver(
    request: DeliveryRequest,
    transport: Transport,
    validators: Sequence[Any],
    *,
    max_body: int,
    resolver: Resolver = system_resolver,
    attempt: int = 1,
) -> Delivery:
    """Validate the recipient, POST the request once, and record what happened.

    Never raises for a delivery problem: refusal, timeout, connection error and non-2xx
    answers are recorded on the returned :class:`Delivery`.
    """
    url = request.subscriber.url
    common: dict[str, Any] = {
        "id": request.id,
        "event": request.event,
        "subscriber": request.subscriber,
    }
    start = time.perf_counter()
    try:
        validate_recipient(url, validators, resolver=resolver)
    except RecipientRefused as exc:
        return Delivery(
            **common,
            ok=False,
            error=str(exc),
            attempts=attempt - 1,
            exception=exc,
            duration=time.perf_counter() - start,
        )
    try:
        response = transport.post(
            url, request.body, request.headers, timeout=request.timeout, max_body=max_body
        )
    except DeliveryTimeout as exc:
        return Delivery(
            **common,
            ok=False,
            error=str(exc),
            attempts=attempt,
            retryable=True,
            timed_out=True,
            exception=exc,
            duration=time.perf_counter() - start,
        )
    except DeliveryConnectionError as exc:
        return Delivery(
            **common,
            ok=False,
            error=str(exc),
            attempts=attempt,
            retryable=True,
            exception=exc,
            duration=time.perf_counter() - start,
        )
    duration = time.perf_counter() - start
    status = response.status_code
    ok = 200 <= status < 300
    error = None if ok else f"{url} answered {status}"
    return Delivery(
        **common,
        ok=ok,
        status_code=status,
        error=error,
        attempts=attempt,
        retryable=not ok and is_retryable_status(status),
        duration=duration,
        response_headers=response.headers,
        response_body=response.body,
        exception=None if ok else DeliveryFailed(error),
    )
