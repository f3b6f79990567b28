"""The retry policy every dispatcher shares: exponential backoff with jitter, capped."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .delivery import Delivery
    from .message import EventMessage
    from .settings import Settings

__all__ = ["RetryPolicy"]


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When a failed delivery is tried again.

    Retry ``n`` (1-based) waits ``delay * 2 ** (n - 1)`` seconds, capped at ``max_delay``,
    with "equal jitter": half of it fixed, half random, so a fleet of senders does not retry
    in step. A receiver's ``Retry-After`` is honoured when longer, up to ``max_delay``.
    """

    retry: bool = True
    max_retries: int = 10
    delay: float = 60.0
    max_delay: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy of ``THORN_RETRY``, ``THORN_RETRY_MAX``, ``THORN_RETRY_DELAY``."""
        return cls(
            retry=settings.retry,
            max_retries=settings.retry_max,
            delay=settings.retry_delay,
            max_delay=settings.retry_backoff_max,
        )

    @classmethod
    def for_message(cls, message: EventMessage, settings: Settings) -> RetryPolicy:
        """The policy of one sent event: its own retry options, capped by the settings."""
        return cls(
            retry=message.retry,
            max_retries=message.retry_max,
            delay=message.retry_delay,
            max_delay=settings.retry_backoff_max,
        )

    def backoff(self, retry: int, *, rng: random.Random | None = None) -> float:
        """Seconds before retry number ``retry`` (1 for the first retry)."""
        if retry < 1:
            raise ValueError(f"retry numbers start at 1, got {retry}")
        base = min(self.delay * 2.0 ** min(retry - 1, 62), self.max_delay)
        jitter: float = (rng or random).uniform(0, base / 2)
        return base / 2 + jitter

    def next_delay(self, delivery: Delivery, *, rng: random.Random | None = None) -> float | None:
        """Seconds before the next attempt of ``delivery``, or None when it should not retry.

        No retry after success, after a final failure (refused URL, 4xx other than 408 and
        429, 410 Gone), when retries are off, or once ``max_retries`` retries were made.
        """
        if delivery.ok or not delivery.retryable or not self.retry:
            return None
        retries_made = max(delivery.attempts - 1, 0)
        if retries_made >= self.max_retries:
            return None
        wait = self.backoff(retries_made + 1, rng=rng)
        if delivery.retry_after is not None:
            wait = max(wait, min(delivery.retry_after, self.max_delay))
        return wait
