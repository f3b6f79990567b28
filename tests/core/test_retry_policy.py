"""RetryPolicy: exponential backoff with equal jitter, capped, honouring Retry-After."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from thorn_core import Event, Subscriber, Thorn
from thorn_core.delivery import Delivery
from thorn_core.retry import RetryPolicy
from thorn_core.settings import Settings

SUBSCRIBER = Subscriber(url="https://example.com/hook")


def failed(**fields: Any) -> Delivery:
    """A retryable failed delivery (a 503 on the first attempt) with ``fields`` changed."""
    values: dict[str, Any] = {
        "id": "d-1",
        "event": "order.paid",
        "subscriber": SUBSCRIBER,
        "ok": False,
        "status_code": 503,
        "retryable": True,
        "attempts": 1,
    }
    return Delivery(**{**values, **fields})


def seeded(seed: int) -> random.Random:
    """A seeded random source, so every run draws the same jitter."""
    return random.Random(seed)  # noqa: S311 - retry jitter, not cryptography


@pytest.fixture
def rng() -> random.Random:
    """The random source of most tests here."""
    return seeded(20240611)


class TestBackoff:
    """``backoff(n)`` waits between half and all of ``min(delay * 2 ** (n - 1), max_delay)``."""

    @pytest.mark.parametrize("retry", range(1, 13))
    def test_bounds_per_retry_number(self, rng, retry):
        """Each retry waits in ``[base / 2, base]`` with base doubling from ``delay``."""
        policy = RetryPolicy(delay=2.0, max_delay=10_000.0)
        base = 2.0 * 2 ** (retry - 1)

        waits = [policy.backoff(retry, rng=rng) for _ in range(200)]

        assert all(base / 2 <= wait <= base for wait in waits)
        assert max(waits) - min(waits) > base / 4

    def test_first_retries_double(self, rng):
        """The lower bound of each retry's wait is twice the previous one's."""
        policy = RetryPolicy(delay=60.0, max_delay=3600.0)

        lows = [min(policy.backoff(n, rng=rng) for _ in range(500)) for n in (1, 2, 3)]

        assert 30.0 <= lows[0] < 31.0
        assert 60.0 <= lows[1] < 62.0
        assert 120.0 <= lows[2] < 124.0

    @pytest.mark.parametrize("retry", [7, 8, 20, 63, 64, 1000, 10**6])
    def test_capped_at_max_delay(self, rng, retry):
        """Past ``max_delay``, waits stay between its half and itself (and never overflow)."""
        policy = RetryPolicy(delay=60.0, max_delay=3600.0)

        waits = [policy.backoff(retry, rng=rng) for _ in range(100)]

        assert all(1800.0 <= wait <= 3600.0 for wait in waits)

    def test_zero_delay_retries_at_once(self, rng):
        """``THORN_RETRY_DELAY = 0`` means no wait at all."""
        policy = RetryPolicy(delay=0.0)

        assert [policy.backoff(n, rng=rng) for n in (1, 5, 50)] == [0.0, 0.0, 0.0]

    def test_seeded_rng_repeats(self):
        """The same seed gives the same waits: the jitter comes only from ``rng``."""
        policy = RetryPolicy(delay=10.0)

        first = [policy.backoff(n, rng=seeded(7)) for n in range(1, 6)]
        second = [policy.backoff(n, rng=seeded(7)) for n in range(1, 6)]

        assert first == second

    def test_without_rng_uses_the_random_module(self):
        """Without ``rng`` the wait still falls within its bounds."""
        assert 5.0 <= RetryPolicy(delay=10.0).backoff(1) <= 10.0

    @pytest.mark.parametrize("retry", [0, -1])
    def test_retry_numbers_start_at_one(self, retry):
        """Retry number 0 or below is a programming error."""
        with pytest.raises(ValueError, match="start at 1"):
            RetryPolicy().backoff(retry)


class TestNextDelay:
    """``next_delay(delivery)``: how long until the next attempt, or None for no retry."""

    def test_first_retry_is_the_first_backoff(self):
        """After one failed attempt, the wait is ``backoff(1)`` for the same random draw."""
        policy = RetryPolicy(delay=30.0)

        wait = policy.next_delay(failed(attempts=1), rng=seeded(3))

        assert wait == policy.backoff(1, rng=seeded(3))
        assert wait is not None
        assert 15.0 <= wait <= 30.0

    def test_later_attempts_back_off_further(self, rng):
        """After ``n`` attempts the wait is that of retry number ``n``."""
        policy = RetryPolicy(delay=1.0, max_delay=1000.0)

        for attempts in range(1, 8):
            wait = policy.next_delay(failed(attempts=attempts), rng=rng)
            base = 2.0 ** (attempts - 1)
            assert wait is not None
            assert base / 2 <= wait <= base

    def test_retry_after_raises_the_wait(self, rng):
        """A ``Retry-After`` longer than the backoff becomes the wait."""
        policy = RetryPolicy(delay=1.0)

        assert policy.next_delay(failed(status_code=429, retry_after=120.0), rng=rng) == 120.0

    def test_shorter_retry_after_keeps_the_backoff(self, rng):
        """A ``Retry-After`` shorter than the backoff does not shorten it."""
        policy = RetryPolicy(delay=60.0)

        wait = policy.next_delay(failed(retry_after=1.0), rng=rng)

        assert wait is not None
        assert 30.0 <= wait <= 60.0

    @pytest.mark.parametrize("retry_after", [3601.0, 86_400.0, float("inf")])
    def test_retry_after_is_capped_at_max_delay(self, rng, retry_after):
        """A receiver cannot push a retry past ``max_delay``."""
        policy = RetryPolicy(delay=1.0, max_delay=3600.0)

        assert policy.next_delay(failed(retry_after=retry_after), rng=rng) == 3600.0

    def test_timeouts_and_connection_errors_are_retried(self, rng):
        """A timeout or a broken connection (no status) gets a retry."""
        policy = RetryPolicy(delay=1.0)

        timeout = failed(status_code=None, timed_out=True)
        broken = failed(status_code=None)

        assert policy.next_delay(timeout, rng=rng) is not None
        assert policy.next_delay(broken, rng=rng) is not None

    @pytest.mark.parametrize(
        "delivery",
        [
            failed(ok=True, status_code=200, retryable=False),
            failed(status_code=404, retryable=False),
            failed(status_code=410, retryable=False),
            failed(status_code=None, retryable=False, attempts=0, error="refused"),
            failed(status_code=400, retryable=False, retry_after=5.0),
        ],
        ids=["ok", "not-found", "gone", "refused", "final-with-retry-after"],
    )
    def test_no_retry_for_success_or_final_failure(self, rng, delivery):
        """Success, a final 4xx, 410 Gone and a refused URL are never retried."""
        assert RetryPolicy().next_delay(delivery, rng=rng) is None

    def test_no_retry_when_retries_are_off(self, rng):
        """``retry=False`` turns retries off whatever the failure."""
        assert RetryPolicy(retry=False).next_delay(failed(), rng=rng) is None

    def test_stops_after_max_retries(self, rng):
        """``max_retries`` retries are made after the first attempt, then no more."""
        policy = RetryPolicy(max_retries=3, delay=1.0)

        waits = [policy.next_delay(failed(attempts=n), rng=rng) for n in range(1, 6)]

        assert [wait is not None for wait in waits] == [True, True, True, False, False]

    def test_zero_max_retries_never_retries(self, rng):
        """``max_retries=0`` means the first attempt is the only one."""
        assert RetryPolicy(max_retries=0).next_delay(failed(), rng=rng) is None


class TestConstruction:
    """Policies come from the settings, or from one sent event's own options."""

    def test_defaults(self):
        """The defaults match the settings': 10 retries, from 60 s, capped at one hour."""
        assert RetryPolicy() == RetryPolicy.from_settings(Settings())
        assert attrs.asdict(RetryPolicy()) == {
            "retry": True,
            "max_retries": 10,
            "delay": 60.0,
            "max_delay": 3600.0,
        }

    def test_from_settings(self):
        """``THORN_RETRY``, ``THORN_RETRY_MAX``, ``THORN_RETRY_DELAY`` and the backoff cap."""
        settings = Settings.from_mapping(
            {
                "THORN_RETRY": False,
                "THORN_RETRY_MAX": 4,
                "THORN_RETRY_DELAY": 2.5,
                "THORN_RETRY_BACKOFF_MAX": 30.0,
            }
        )

        policy = RetryPolicy.from_settings(settings)

        assert policy == RetryPolicy(retry=False, max_retries=4, delay=2.5, max_delay=30.0)

    def test_for_message_uses_the_events_options(self, make_app: Callable[..., Thorn]):
        """An event's ``retry_max`` and ``retry_delay`` apply; the cap stays the settings'."""
        app = make_app({"THORN_RETRY_MAX": 9, "THORN_RETRY_BACKOFF_MAX": 90.0})
        event = Event("order.paid", app=app, retry_max=2, retry_delay=5.0)

        policy = RetryPolicy.for_message(event.prepare({"id": 1}), app.settings)

        assert policy == RetryPolicy(retry=True, max_retries=2, delay=5.0, max_delay=90.0)

    def test_for_message_falls_back_to_the_settings(self, make_app: Callable[..., Thorn]):
        """An event without its own options gets the settings' retry policy."""
        app = make_app({"THORN_RETRY": False, "THORN_RETRY_MAX": 1, "THORN_RETRY_DELAY": 7.0})

        message = Event("order.paid", app=app).prepare({})

        assert RetryPolicy.for_message(message, app.settings) == RetryPolicy.from_settings(
            app.settings
        )

    def test_is_immutable(self):
        """A policy is a frozen value."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            RetryPolicy().delay = 1.0  # type: ignore[misc]
