"""Resolving a subscriber's host counts against the delivery's deadline: a resolver that
hangs cannot hold a delivery (or a sender's thread) past THORN_EVENT_TIMEOUT."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from thorn_core import Event, RecipientRefused, RetryPolicy, Subscriber, Thorn, validators
from thorn_core.exceptions import ResolutionTimeout
from thorn_core.receiver import WebhookReceiver
from thorn_core.subscriptions import check_subscription
from thorn_core.validators import RESOLVER_THREADS, IPAddress, resolve_within

#: The deadline of the deliveries here, and how late an answer may come back at most.
DEADLINE = 0.3
SLACK = 0.5


class Hang:
    """A resolver (and a ``getaddrinfo``) that blocks until released at the end of the test."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, host: str, port: int) -> tuple[IPAddress, ...]:
        self.calls += 1
        self.release.wait(30)
        return (ipaddress.ip_address("93.184.215.14"),)

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        """Numeric hosts fail at once as the real one does; names hang."""
        if kwargs.get("flags", 0) & socket.AI_NUMERICHOST:
            raise socket.gaierror(socket.EAI_NONAME, "not numeric")
        self(host, port)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]


@pytest.fixture
def hang() -> Iterator[Hang]:
    """A hanging resolver, released (its threads end) after the test."""
    hanging = Hang()
    yield hanging
    hanging.release.set()


def free_resolver_slots() -> None:
    """Wait until no resolver thread of an earlier test (released at its teardown) still
    holds a slot, so that this test counts only its own."""
    slots = [validators._resolver_slots.acquire(timeout=5) for _ in range(RESOLVER_THREADS)]
    assert all(slots)
    for _ in slots:
        validators._resolver_slots.release()


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """``call()`` and the seconds it took."""
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


class TestDeliveryDeadline:
    """A delivery whose host does not resolve in time is a retryable timeout, on time."""

    def test_injected_resolver_that_hangs(self, make_app: Callable[..., Thorn], hang: Hang) -> None:
        """The send returns by the deadline with a timed-out, retryable delivery."""
        app = make_app(resolver=hang)
        subscriber = Subscriber(url="https://hooks.example.test/in", event="a.*")
        event = Event("a.b", app=app, timeout=DEADLINE, retry=False)
        result, took = timed(lambda: event.send({"n": 1}, subscribers=[subscriber]))
        (delivery,) = result.deliveries
        assert took < DEADLINE + SLACK
        assert delivery.timed_out
        assert delivery.retryable
        assert delivery.attempts == 1
        assert isinstance(delivery.exception, ResolutionTimeout)
        assert delivery.error == (
            f"https://hooks.example.test/in: cannot resolve 'hooks.example.test' within "
            f"{DEADLINE:.3g} s"
        )

    def test_system_resolver_with_hanging_getaddrinfo(
        self, make_app: Callable[..., Thorn], hang: Hang, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The default resolver (``socket.getaddrinfo``) is bounded the same way."""
        monkeypatch.setattr(socket, "getaddrinfo", hang.getaddrinfo)
        app = make_app()
        subscriber = Subscriber(url="http://slow-dns.example.test/", event="a.*")
        event = Event("a.b", app=app, timeout=DEADLINE, retry=False)
        result, took = timed(lambda: event.send({}, subscribers=[subscriber]))
        (delivery,) = result.deliveries
        assert took < DEADLINE + SLACK
        assert delivery.timed_out
        assert hang.calls == 1

    def test_timeout_is_retried_and_a_quick_answer_delivers(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """The timed-out delivery gets a retry delay; once the resolver answers in time the
        webhook goes to the resolved address with the name as Host."""
        slow = threading.Event()
        slow.set()

        def resolver(host: str, port: int) -> tuple[IPAddress, ...]:
            if slow.is_set():
                time.sleep(DEADLINE * 3)
            return (ipaddress.ip_address("127.0.0.1"),)

        app = make_app({"THORN_DNS_CACHE_TTL": 0}, resolver=resolver)
        url = receiver.url("/hook").replace("127.0.0.1", "hooks.example.test")
        subscriber = Subscriber(url=url, event="a.*")
        event = Event("a.b", app=app, timeout=DEADLINE)
        late = event.send({"n": 1}, subscribers=[subscriber])
        (delivery,) = late.deliveries
        delay = RetryPolicy.for_message(late.message, app.settings).next_delay(delivery)
        assert delay is not None
        assert delay > 0
        slow.clear()
        (sent,) = event.send({"n": 2}, subscribers=[subscriber]).deliveries
        assert sent.ok
        (got,) = receiver.wait_for(1, 5.0)
        assert got.json() == {"n": 2}
        assert got.headers["host"].startswith("hooks.example.test:")


class TestResolveWithin:
    """The bounded resolution itself: answers, errors, and a cap on hung threads."""

    def test_answer_and_errors_pass_through(self) -> None:
        """An answer comes back; the resolver's own error is raised in the caller."""

        def refuse(host: str, port: int) -> tuple[IPAddress, ...]:
            raise RecipientRefused(f"cannot resolve {host!r}: no such name")

        answer = resolve_within(lambda h, p: (ipaddress.ip_address("192.0.2.1"),), "a", 80, 1.0)
        assert answer == (ipaddress.ip_address("192.0.2.1"),)
        with pytest.raises(RecipientRefused, match="no such name"):
            resolve_within(refuse, "nowhere.example", 80, 1.0)

    def test_hung_resolutions_are_capped(self, hang: Hang) -> None:
        """With every resolver thread hung, the next resolution waits its own timeout at
        most and says why; once they are released, resolving works again."""

        free_resolver_slots()

        def hung(n: int) -> str:
            with pytest.raises(ResolutionTimeout) as caught:
                resolve_within(hang, f"h{n}.example", 80, 0.2)
            return str(caught.value)

        with ThreadPoolExecutor(RESOLVER_THREADS) as pool:
            errors = list(pool.map(hung, range(RESOLVER_THREADS)))
        assert errors[3] == "cannot resolve 'h3.example' within 0.2 s"
        quick = lambda h, p: (ipaddress.ip_address("192.0.2.1"),)  # noqa: E731
        with pytest.raises(ResolutionTimeout, match="resolutions are already waiting") as caught:
            timed(lambda: resolve_within(quick, "next.example", 80, 0.2))
        assert "next.example" in str(caught.value)
        hang.release.set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                assert resolve_within(quick, "next.example", 80, 0.2)
                break
            except ResolutionTimeout:
                time.sleep(0.01)
        else:
            pytest.fail("the resolver slots were not given back")


class TestSubscriptionCheck:
    """Checking a new subscription's URL (the REST APIs, the CLIs) is bounded too."""

    def test_hanging_resolver_is_a_field_error(
        self, make_app: Callable[..., Thorn], hang: Hang
    ) -> None:
        """The check answers by THORN_EVENT_TIMEOUT with a message for the url field."""
        app = make_app({"THORN_EVENT_TIMEOUT": DEADLINE}, resolver=hang)
        data = {"event": "a.*", "url": "https://hooks.example.test/in"}
        errors, took = timed(lambda: check_subscription(app, data))
        assert took < DEADLINE + SLACK
        assert errors == {
            "url": [
                "https://hooks.example.test/in: cannot resolve 'hooks.example.test' within "
                f"{DEADLINE:.3g} s"
            ]
        }
