"""The worker's Thorn app: a task without a configured one is retried (never a silent success),
and one subscriber's failing signer fails that delivery alone."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import flask
import pytest
from celery import Celery
from celery.signals import task_failure, task_postrun, task_prerun, task_retry

import thorn_core.app
import thorn_flask
from thorn_core import Event, ImproperlyConfigured, Subscriber, Thorn
from thorn_core.dispatchers.celery import DISPATCH_TASK, PRUNE_TASK
from thorn_core.log import MemoryDeliveryLog
from thorn_core.receiver import WebhookReceiver
from thorn_core.signing import hook_hmac

from ._celery_support import LOOPBACK_VALIDATORS, WAIT, wait_until


@pytest.fixture
def retried() -> Iterator[list[str]]:
    """The reasons of the task retries of the in-process worker, in order."""
    seen: list[str] = []

    def record(request: Any = None, reason: Any = None, **_: Any) -> None:
        seen.append(str(reason))

    task_retry.connect(record, weak=False)
    yield seen
    task_retry.disconnect(record)


@pytest.fixture
def failed() -> Iterator[list[BaseException]]:
    """The exceptions of the tasks that failed in the in-process worker."""
    seen: list[BaseException] = []

    def record(exception: BaseException | None = None, **_: Any) -> None:
        assert exception is not None
        seen.append(exception)

    task_failure.connect(record, weak=False)
    yield seen
    task_failure.disconnect(record)


@pytest.fixture
def no_current_app() -> None:
    """No Thorn app is current in this process (the autouse fixture restores the previous)."""
    thorn_core.app._current = None


def settings(celery_app: Celery, queue: str) -> dict[str, Any]:
    """The THORN_* settings of a publisher (or a worker) of the test's Celery app and queue."""
    return {
        "THORN_DISPATCHER": "celery",
        "THORN_CELERY_APP": celery_app,
        "THORN_CELERY_QUEUE": queue,
        "THORN_RECIPIENT_VALIDATORS": LOOPBACK_VALIDATORS,
    }


def publish(celery_app: Celery, queue: str, receiver: WebhookReceiver, data: Any) -> None:
    """Send ``a.b`` to ``receiver`` from a publisher that is not the current app (a web
    process), leaving this process without a configured app."""
    with Thorn(settings(celery_app, queue), set_as_current=False) as publisher:
        subscriber = Subscriber(url=receiver.url(), event="a.*")
        publisher.event("a.b").send(data, subscribers=[subscriber])


class FailingOnce:
    """A stored-subscriber source whose first lookup fails (a database that is down)."""

    def __init__(self) -> None:
        self.lookups = 0

    def matching(self, event: str, sender: Any = None, context: Any = None) -> list[Subscriber]:
        """Fail the first time; then there is no stored subscriber."""
        self.lookups += 1
        if self.lookups == 1:
            raise ConnectionError("the database is down")
        return []


class TestWorkerWithoutApp:
    """A worker task that finds no configured Thorn app fails loudly and runs again later."""

    def test_retried_until_an_app_is_configured(
        self,
        celery_app: Celery,
        queue: str,
        run_worker: Callable[..., Any],
        receiver: WebhookReceiver,
        retried: list[str],
        no_current_app: None,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """The task is retried (not acknowledged as done) and delivered once an app exists."""
        publish(celery_app, queue, receiver, {"n": 1})
        with (
            caplog.at_level(logging.ERROR, logger="thorn_core.dispatchers.celery"),
            run_worker(),
        ):
            wait_until(lambda: len(retried) >= 2, what="two retries of the task")
            assert receiver.received == []
            with Thorn(settings(celery_app, queue)):  # the worker is configured now
                receiver.wait_for(1, WAIT)
        assert f"The Celery task {DISPATCH_TASK} needs a configured Thorn app" in retried[0]
        assert "THORN_CELERY_APP" in caplog.text
        assert "app.app_context()" in caplog.text
        assert "Retrying the task in 1 s (attempt 1)" in caplog.text
        assert "Retrying the task in 2 s (attempt 2)" in caplog.text
        assert [r.json() for r in receiver.received] == [{"n": 1}]

    def test_unconfigured_runs_leave_the_retry_budget_whole(
        self,
        celery_app: Celery,
        queue: str,
        run_worker: Callable[..., Any],
        receiver: WebhookReceiver,
        retried: list[str],
        no_current_app: None,
    ) -> None:
        """After two runs without an app, a subscriber lookup that fails once is still
        retried under THORN_RETRY_MAX=1, and the event is delivered."""
        publish(celery_app, queue, receiver, {"n": 4})
        with run_worker():
            wait_until(lambda: len(retried) >= 2, what="two retries without an app")
            configured = {
                **settings(celery_app, queue),
                "THORN_RETRY_MAX": 1,
                "THORN_RETRY_DELAY": 0.1,
            }
            with Thorn(configured) as worker:
                worker.add_subscriber_source(FailingOnce())
                receiver.wait_for(1, WAIT)
        assert "database is down" in retried[-1]
        assert [r.json() for r in receiver.received] == [{"n": 4}]

    def test_implicit_default_app_is_refused(
        self,
        celery_app: Celery,
        queue: str,
        run_worker: Callable[..., Any],
        receiver: WebhookReceiver,
        retried: list[str],
        no_current_app: None,
    ) -> None:
        """A default app that current_app() built on its own does not count as configured."""
        implicit = thorn_core.current_app()
        assert implicit.settings.dispatcher == "default"
        publish(celery_app, queue, receiver, {"n": 1})
        with run_worker():
            wait_until(lambda: len(retried) >= 1, what="a retry of the task")
        assert receiver.received == []
        assert thorn_core.app._current is implicit

    def test_flask_worker_needs_the_app_context(
        self,
        celery_app: Celery,
        queue: str,
        run_worker: Callable[..., Any],
        receiver: WebhookReceiver,
        retried: list[str],
        no_current_app: None,
    ) -> None:
        """A Flask worker running tasks outside the app context is retried; once each task
        runs inside it (as a Flask Task subclass does), the event is delivered."""
        web = flask.Flask("shop")
        web.config.update(settings(celery_app, queue))
        thorn_flask.Thorn(web)
        with web.app_context():
            Event("a.b").send({"n": 2}, subscribers=[Subscriber(url=receiver.url(), event="a.*")])

        contexts: list[Any] = []

        def push(**_: Any) -> None:
            contexts.append(web.app_context())
            contexts[-1].push()

        def pop(**_: Any) -> None:
            contexts.pop().pop()

        with run_worker():
            wait_until(lambda: len(retried) >= 1, what="a retry of the task")
            assert receiver.received == []
            task_prerun.connect(push, weak=False)
            task_postrun.connect(pop, weak=False)
            try:
                receiver.wait_for(1, WAIT)
            finally:
                task_prerun.disconnect(push)
                task_postrun.disconnect(pop)
        assert [r.json() for r in receiver.received] == [{"n": 2}]

    def test_maintenance_task_fails_loudly(
        self,
        celery_app: Celery,
        queue: str,
        run_worker: Callable[..., Any],
        failed: list[BaseException],
        no_current_app: None,
    ) -> None:
        """The prune task without a configured app fails with the error naming the fixes."""
        with run_worker():
            celery_app.send_task(PRUNE_TASK, queue=queue)
            wait_until(lambda: bool(failed), what="the prune task to fail")
        (error,) = failed
        assert isinstance(error, ImproperlyConfigured)
        assert f"The Celery task {PRUNE_TASK} needs a configured Thorn app" in str(error)


def picky_signer(digest: str, secret: str, body: bytes) -> str:
    """A custom THORN_HMAC_SIGNER that cannot sign with one secret."""
    if secret == "unusable-secret":
        raise ValueError("the key service refuses this secret")
    return hook_hmac(digest, secret, body)


class TestFailingSigner:
    """A custom signer that raises for one subscriber fails that delivery, not its chunk."""

    def test_other_deliveries_of_the_chunk_go(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        receiver: WebhookReceiver,
    ) -> None:
        """The unsigned delivery is logged with the reason; the two others arrive."""
        log = MemoryDeliveryLog()
        urls = [receiver.url("/1"), receiver.url("/2"), receiver.url("/3")]
        unsigned = Subscriber(url=urls[0], event="a.*", hmac_secret="unusable-secret")
        others = [Subscriber(url=url, event="a.*", hmac_secret="good-secret") for url in urls[1:]]
        app = make_thorn({"THORN_HMAC_SIGNER": picky_signer, "THORN_DELIVERY_LOG": log})
        result = app.event("a.b").send({"n": 3}, subscribers=[unsigned, *others])
        with run_worker():
            got = receiver.wait_for(2, WAIT)
            wait_until(lambda: len(log.failed(str(unsigned.uuid))) == 1, what="the logged failure")
            time.sleep(0.2)
        assert sorted(r.path for r in got) == ["/2", "/3"]
        assert all(r.hook_hmac_valid("good-secret") for r in got)
        assert len(receiver.received) == 2
        (record,) = log.failed(str(unsigned.uuid))
        assert record.error == "cannot sign the delivery: the key service refuses this secret"
        assert record.attempt == 0
        assert not record.retryable
        assert result.state == "queued"
