"""Fixtures of the Django suite: loopback opt-in, real receivers, users, the PostgreSQL gate."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from pytest_django.fixtures import Settings as SettingsWrapper

from thorn_core.receiver import ReceivedWebhook, WebhookReceiver
from thorn_core.testing import loopback_validators
from thorn_core.validators import system_resolver

from .settings import POSTGRESQL_URL

__all__ = [
    "Switch",
    "_fake_dns",
    "_postgresql_gate",
    "flaky",
    "loopback",
    "make_user",
    "pytest_collection_modifyitems",
    "subscribe",
    "switch",
]

_HERE = os.path.dirname(__file__)


def _postgresql_problem() -> str | None:
    """Why the PostgreSQL database of the run cannot be used, or None when it can."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        return None
    import psycopg

    try:
        psycopg.connect(POSTGRESQL_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {POSTGRESQL_URL} is unreachable: {str(exc).strip()}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL runs, skip the Django suite when the server is unreachable (not on CI)."""
    if os.environ.get("CI") == "true":
        return  # _postgresql_gate probes the server and fails the suite instead
    problem = _postgresql_problem()
    if problem is None:
        return
    skip = pytest.mark.skip(reason=problem)
    for item in items:
        if str(item.path).startswith(_HERE):
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _postgresql_gate() -> None:
    """With ``CI=true`` an unreachable PostgreSQL fails the suite instead of skipping it."""
    problem = _postgresql_problem() if os.environ.get("CI") == "true" else None
    if problem is not None:
        pytest.fail(problem)


#: Public addresses the suite resolves without a network (example.com's documented one).
FAKE_DNS = {"example.com": "93.184.215.14", "hooks.example.com": "93.184.215.14"}


@pytest.fixture(autouse=True)
def _fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve the names of :data:`FAKE_DNS` without DNS (the sandbox has none); others as usual."""
    from thorn_django import get_app

    def resolve(host: str, port: int) -> Any:
        if host in FAKE_DNS:
            return (ipaddress.ip_address(FAKE_DNS[host]),)
        return system_resolver(host, port)

    app = get_app()
    monkeypatch.setattr(app, "resolver", resolve)
    monkeypatch.setattr(app.recipients, "resolver", resolve)


@pytest.fixture
def loopback(settings: SettingsWrapper) -> SettingsWrapper:
    """Allow deliveries to 127.0.0.0/8 (refused by default), keeping the other checks."""
    settings.THORN_RECIPIENT_VALIDATORS = list(loopback_validators())
    return settings


@pytest.fixture
def make_user(db: None) -> Callable[[str], Any]:
    """Create users by name."""

    def make(username: str) -> Any:
        return get_user_model().objects.create_user(username, password="pw")

    return make


@pytest.fixture
def subscribe(db: None) -> Callable[..., Any]:
    """Store a subscriber (``event``, ``url`` and any other field)."""
    from thorn_django.models import Subscriber

    def make(event: str, url: str, **fields: Any) -> Subscriber:
        return Subscriber.objects.create(event=event, url=url, **fields)

    return make


class Switch:
    """How :func:`flaky` answers: 503 while ``down`` (the default), 200 once it is cleared."""

    def __init__(self) -> None:
        self.down = True

    def __call__(self, _request: ReceivedWebhook) -> tuple[int, bytes]:
        return (503, b"down for maintenance") if self.down else (200, b"ok")


@pytest.fixture
def switch() -> Switch:
    """The state of the :func:`flaky` receiver: down at first."""
    return Switch()


@pytest.fixture
def flaky(switch: Switch) -> Iterator[WebhookReceiver]:
    """A real receiver on 127.0.0.1 that fails until ``switch.down`` is cleared."""
    with WebhookReceiver(respond=switch) as running:
        yield running
