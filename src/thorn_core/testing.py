"""Test helpers for code that sends webhooks: a verifying loopback receiver and a test app.

The pytest plugin (:mod:`thorn_core.pytest_plugin`) wraps these in fixtures; they work just
as well from ``unittest`` or a script.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .exceptions import InvalidSignature
from .receiver import ReceivedWebhook, Reply, WebhookReceiver
from .signing import generate_secret
from .subscribers import StaticSubscribers, Subscriber
from .validators import allow_cidr_network, block_internal_ips, ensure_protocol
from .verification import VerifiedWebhook, parse_payload, verify_request

if TYPE_CHECKING:
    from .app import Thorn

__all__ = ["ReceivedDelivery", "WebhookRecorder", "loopback_validators"]


def loopback_validators() -> tuple[Any, ...]:
    """Recipient validators for tests: the safety checks, with 127.0.0.0/8 and ::1 allowed.

    Scheme checks stay (http and https only); the port check is dropped, since test
    receivers listen on a free port.
    """
    return (
        ensure_protocol("http", "https"),
        block_internal_ips(),
        allow_cidr_network("127.0.0.0/8", "::1/128"),
    )


@attrs.frozen
class ReceivedDelivery:
    """One webhook a :class:`WebhookRecorder` received, and the outcome of verifying it."""

    #: The request as it arrived: path, headers (lower-case names), raw body.
    request: ReceivedWebhook
    #: The verified webhook (parsed payload included), or None if verification failed.
    webhook: VerifiedWebhook | None
    #: Why verification failed, or None.
    error: str | None = None

    @property
    def verified(self) -> bool:
        """Whether the signatures verified with the recorder's secret."""
        return self.webhook is not None

    @property
    def event(self) -> str | None:
        """The ``Hook-Event`` header."""
        return self.request.event

    @property
    def delivery_id(self) -> str | None:
        """The ``Hook-Delivery`` header (the receiver's idempotency key)."""
        return self.request.delivery_id

    @property
    def path(self) -> str:
        """The path the webhook was posted to."""
        return self.request.path

    @property
    def headers(self) -> Mapping[str, str]:
        """The request headers, names in lower case."""
        return self.request.headers

    @property
    def body(self) -> bytes:
        """The raw body."""
        return self.request.body

    @property
    def payload(self) -> Any:
        """The body decoded for its content type (JSON, form), verified or not."""
        if self.webhook is not None:
            return self.webhook.payload
        return parse_payload(self.request.headers.get("content-type"), self.request.body)


class WebhookRecorder:
    """A real receiver on 127.0.0.1 that verifies each webhook and records it.

    It answers 200 to a webhook whose signatures verify with :attr:`secret` (both the
    Standard Webhooks headers and ``Hook-HMAC``), and 401 with the reason to any other, as a
    careful production receiver would. Use it as a context manager, or call
    :meth:`start` and :meth:`stop`.

    Args:
        secret: the secret subscribers sign with (a ``whsk_`` key: ed25519, verified with
            its public half); a new one of ``THORN_SIGNATURE``'s kind when None.
        tolerance: seconds the Standard Webhooks timestamp may be off.
        host: the address to listen on (loopback).
    """

    def __init__(
        self, secret: str | None = None, *, tolerance: float = 300.0, host: str = "127.0.0.1"
    ) -> None:
        self.secret = secret or generate_secret()
        self.tolerance = tolerance
        self._received: list[ReceivedDelivery] = []
        self._condition = threading.Condition()
        self.receiver = WebhookReceiver(host, 0, respond=self._respond)

    def _respond(self, request: ReceivedWebhook) -> Reply:
        try:
            webhook = verify_request(
                request.headers, request.body, self.secret, tolerance=self.tolerance
            )
        except InvalidSignature as exc:
            delivery = ReceivedDelivery(request, None, str(exc))
        else:
            delivery = ReceivedDelivery(request, webhook)
        with self._condition:
            self._received.append(delivery)
            self._condition.notify_all()
        if delivery.verified:
            return 200, b"ok"
        return 401, f"invalid signature: {delivery.error}".encode()

    def url(self, path: str = "/hooks") -> str:
        """The URL of ``path`` on this receiver."""
        return self.receiver.url(path)

    def subscriber(self, event: str = "*", *, path: str = "/hooks", **fields: Any) -> Subscriber:
        """A subscriber of ``event`` (a pattern) that delivers here, signed with the secret.

        Extra keyword arguments are :class:`~thorn_core.Subscriber` fields (``user``,
        ``content_type``, ...).
        """
        return Subscriber(url=self.url(path), event=event, hmac_secret=self.secret, **fields)

    def subscribe(
        self, app: Thorn, event: str = "*", *, path: str = "/hooks", **fields: Any
    ) -> Subscriber:
        """Subscribe this receiver to ``event`` on ``app`` (a subscriber source is added)."""
        subscriber = self.subscriber(event, path=path, **fields)
        app.add_subscriber_source(StaticSubscribers.from_setting({event: subscriber}))
        return subscriber

    @property
    def received(self) -> list[ReceivedDelivery]:
        """Every webhook received so far, oldest first."""
        with self._condition:
            return list(self._received)

    def clear(self) -> None:
        """Forget the webhooks received so far."""
        with self._condition:
            self._received.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedDelivery]:
        """Wait until ``count`` webhooks have arrived; return them all.

        Raises:
            TimeoutError: fewer arrived within ``timeout`` seconds.
        """
        with self._condition:
            if not self._condition.wait_for(lambda: len(self._received) >= count, timeout):
                raise TimeoutError(f"expected {count} webhooks, got {len(self._received)}")
            return list(self._received)

    def assert_received(
        self, event: str | None = None, *, count: int = 1, timeout: float = 5.0
    ) -> list[ReceivedDelivery]:
        """Wait for ``count`` verified webhooks (of ``event``, if given) and return them.

        Raises:
            AssertionError: a webhook failed verification, or too few arrived in time.
        """

        def matching() -> list[ReceivedDelivery]:
            return [d for d in self._received if event is None or d.event == event]

        with self._condition:
            self._condition.wait_for(lambda: len(matching()) >= count, timeout)
            found = matching()
        bad = [d for d in found if not d.verified]
        if bad:
            raise AssertionError(f"a webhook failed verification: {bad[0].error}")
        if len(found) < count:
            what = "webhooks" if event is None else f"{event!r} webhooks"
            raise AssertionError(
                f"expected {count} {what} within {timeout:g}s, got {len(found)}: "
                f"{_summary(self.received)}"
            )
        return found

    def start(self) -> WebhookRecorder:
        """Serve in a background thread."""
        self.receiver.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.receiver.stop()

    def __enter__(self) -> WebhookRecorder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _summary(received: Iterable[ReceivedDelivery]) -> str:
    names = [f"{d.event} ({'verified' if d.verified else 'invalid'})" for d in received]
    return ", ".join(names) or "none"
