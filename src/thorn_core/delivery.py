"""One delivery: a signed request to one subscriber, its attempt, and the recorded outcome."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

import attrs

from .exceptions import (
    DeliveryConnectionError,
    DeliveryFailed,
    DeliveryTimeout,
    InvalidURL,
    RecipientRefused,
    ResolutionTimeout,
)
from .log import CREDENTIAL_HEADERS
from .subscribers import Subscriber
from .transport import Transport
from .validators import (
    RecipientCache,
    Resolver,
    ValidatorSet,
    compile_validators,
    display_url,
    system_resolver,
    validate_recipient,
)

__all__ = [
    "REDIRECT_STATUSES",
    "Delivery",
    "DeliveryRequest",
    "deliver",
    "is_retryable_status",
    "parse_retry_after",
]

#: Statuses worth another attempt later: the receiver may be overloaded or restarting.
_RETRYABLE_STATUSES = frozenset({408, 429})
#: A Retry-After beyond a year is taken as a year (policies cap it far lower anyway).
_RETRY_AFTER_MAX = 365 * 86400.0
#: Redirects Thorn follows (when allowed) by POSTing the same signed body to the new URL.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def is_retryable_status(status_code: int) -> bool:
    """Whether a non-2xx status is worth retrying (408, 429 and every 5xx)."""
    return status_code in _RETRYABLE_STATUSES or status_code >= 500


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), _RETRY_AFTER_MAX)
    import email.utils  # only for an HTTP-date Retry-After: keeps `import thorn_core` light

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    wait = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, wait), _RETRY_AFTER_MAX)


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
    (timeouts, connection errors, 408, 429, 5xx); ``retry_after`` is the receiver's
    ``Retry-After`` in seconds. ``attempts`` counts HTTP attempts made so far; a URL refused
    by the recipient validators makes none. ``url`` is the last URL contacted (it differs
    from the subscriber's after a followed redirect).
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
    retry_after: float | None = None
    url: str | None = attrs.field(
        default=None, repr=lambda url: repr(url if url is None else display_url(url))
    )
    response_headers: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False)
    response_body: bytes = attrs.field(default=b"", repr=False, eq=False)
    exception: BaseException | None = attrs.field(default=None, repr=False, eq=False)
    #: The request attempted (None when the delivery failed before one could be made).
    request: DeliveryRequest | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def gone(self) -> bool:
        """The receiver answered 410 Gone: the subscription should be deactivated."""
        return self.status_code == 410


def deliver(
    request: DeliveryRequest,
    transport: Transport,
    validators: ValidatorSet | Sequence[Any],
    *,
    max_body: int,
    resolver: Resolver = system_resolver,
    attempt: int = 1,
    max_redirects: int = 0,
    recipients: RecipientCache | None = None,
) -> Delivery:
    """Validate the recipient, POST the request (following up to ``max_redirects`` validated
    hops), and record what happened.

    The whole attempt, resolving and redirects included, has ``request.timeout`` seconds
    (a resolution still running then is a retryable timeout). Never raises for
    a delivery problem: refusal, timeout, connection error and non-2xx answers are recorded
    on the returned :class:`Delivery`. With ``recipients``, approvals come from that cache
    (and its resolver) while fresh.
    """
    checks = compile_validators(validators)
    start = time.monotonic()
    deadline = start + request.timeout
    url = request.subscriber.url
    hops = 0
    origin: tuple[str, str, int | None] | None = None

    def outcome(**fields: Any) -> Delivery:
        return Delivery(
            id=request.id,
            event=request.event,
            subscriber=request.subscriber,
            request=request,
            url=url,
            duration=time.monotonic() - start,
            **fields,
        )

    def timed_out(exc: DeliveryTimeout) -> Delivery:
        """Past the deadline (resolving, or waiting for the answer): worth another attempt."""
        return outcome(
            ok=False,
            error=str(exc),
            attempts=attempt,
            retryable=True,
            timed_out=True,
            exception=exc,
        )

    while True:
        # Resolving the host counts against the deadline: a resolver that hangs cannot
        # hold the delivery past it (a timed-out resolution is a retryable timeout).
        remaining = max(deadline - time.monotonic(), 0.001)
        try:
            if recipients is not None:
                recipient = recipients.validate(url, checks, timeout=remaining)
            else:
                recipient = validate_recipient(url, checks, resolver=resolver, timeout=remaining)
        except ResolutionTimeout as exc:
            return timed_out(exc)
        except (RecipientRefused, InvalidURL) as exc:
            made = attempt if hops else attempt - 1
            return outcome(ok=False, error=str(exc), attempts=made, exception=exc)
        target = recipient.target
        if origin is None:
            origin = (target.scheme, target.host, target.port)
        headers = request.headers
        if hops:
            # Credentials go to the subscriber's origin only, as browsers and requests do:
            # an explicit Authorization (or Cookie) is dropped on a hop elsewhere, and the
            # URL's userinfo stays with the URL (a relative Location keeps it, another
            # origin's URL has its own).
            keep_credentials = (target.scheme, target.host, target.port) == origin
            headers = {
                k: v
                for k, v in headers.items()
                if k.lower() != "host" and (keep_credentials or k.lower() not in CREDENTIAL_HEADERS)
            }
        try:
            response = transport.post(
                url,
                request.body,
                headers,
                timeout=max(deadline - time.monotonic(), 0.001),
                max_body=max_body,
                addresses=recipient.addresses,
            )
        except DeliveryTimeout as exc:
            return timed_out(exc)
        except DeliveryConnectionError as exc:
            return outcome(
                ok=False, error=str(exc), attempts=attempt, retryable=True, exception=exc
            )
        status = response.status_code
        location = response.headers.get("Location")
        if status in REDIRECT_STATUSES and location:
            if hops < max_redirects:
                try:
                    next_url = urljoin(url, location)
                except ValueError as exc:
                    bad = (
                        f"{display_url(url)} answered {status} to a malformed Location "
                        f"{location!r}: {exc}"
                    )
                    return outcome(
                        ok=False,
                        status_code=status,
                        error=bad,
                        attempts=attempt,
                        exception=InvalidURL(bad),
                        response_headers=response.headers,
                    )
                hops += 1
                url = next_url
                continue
            why = (
                "redirects are not followed (THORN_ALLOW_REDIRECTS)"
                if not max_redirects
                else f"more than {max_redirects} redirects"
            )
            refused = f"{display_url(url)} answered {status} to {display_url(location)}; {why}"
            return outcome(
                ok=False,
                status_code=status,
                error=refused,
                attempts=attempt,
                exception=DeliveryFailed(refused),
                response_headers=response.headers,
            )
        ok = 200 <= status < 300
        error: str | None = None if ok else f"{display_url(url)} answered {status}"
        retryable = not ok and is_retryable_status(status)
        return outcome(
            ok=ok,
            status_code=status,
            error=error,
            attempts=attempt,
            retryable=retryable,
            retry_after=parse_retry_after(response.headers.get("Retry-After"))
            if retryable
            else None,
            response_headers=response.headers,
            response_body=response.body,
            exception=None if ok else DeliveryFailed(error),
        )
