"""Fixtures shared by every test package: the current app is restored; real receivers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import thorn_core.app
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver


@pytest.fixture(autouse=True)
def _restore_current_app() -> Iterator[None]:
    """Keep each test's current app (``thorn_core.app._current``) from leaking into the next."""
    saved = thorn_core.app._current
    try:
        yield
    finally:
        thorn_core.app._current = saved


@pytest.fixture(autouse=True)
def _restore_root_log_level() -> Iterator[None]:
    """Keep a level set on the root logger (a Celery worker sets ERROR) from hiding later logs."""
    root = logging.getLogger()
    level = root.level
    try:
        yield
    finally:
        root.setLevel(level)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A real webhook receiver on 127.0.0.1 answering 200."""
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    """Start more receivers, optionally with a ``respond`` callable; all stopped afterwards."""
    started: list[WebhookReceiver] = []

    def make(
        respond: Callable[[ReceivedWebhook], Reply] | None = None, **kwargs: Any
    ) -> WebhookReceiver:
        running = WebhookReceiver(respond=respond, **kwargs).start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
