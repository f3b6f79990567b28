"""The maintenance tasks for Celery beat: relaying the outbox and pruning the delivery log."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.signals import task_postrun

from thorn_core import Thorn
from thorn_core.dispatchers.celery import PRUNE_TASK, RELAY_TASK
from thorn_core.log import AttemptRecord, MemoryDeliveryLog, utcnow
from thorn_core.receiver import WebhookReceiver

from ..core._sqlite_outbox import SQLiteOutbox
from ._celery_support import WAIT, wait_until


@pytest.fixture
def returned() -> Iterator[dict[str, list[Any]]]:
    """What tasks run by the in-process worker returned, by task name."""
    seen: dict[str, list[Any]] = {}

    def record(sender: Any = None, retval: Any = None, **_: Any) -> None:
        seen.setdefault(sender.name, []).append(retval)

    task_postrun.connect(record, weak=False)
    yield seen
    task_postrun.disconnect(record)


def attempt(delivery_id: str, *, ok: bool, age: float) -> AttemptRecord:
    """An attempt made ``age`` seconds ago."""
    return AttemptRecord(
        delivery_id=delivery_id,
        event="a.b",
        subscriber_uuid="11111111-1111-1111-1111-111111111111",
        url="http://127.0.0.1/",
        attempt=1,
        ok=ok,
        retryable=not ok,
        status_code=200 if ok else 503,
        error=None,
        duration=0.0,
        at=utcnow() - datetime.timedelta(seconds=age),
    )


class TestRelayTask:
    """thorn.relay_outbox dispatches what the outbox holds and returns how many."""

    def test_relays_stored_events(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        celery_app: Celery,
        queue: str,
        receiver: WebhookReceiver,
        returned: dict[str, list[Any]],
        tmp_path: Path,
    ) -> None:
        """Five events stored in a transaction reach the receiver once the task runs (batches
        of 2); running it again relays nothing."""
        outbox = SQLiteOutbox(tmp_path / "outbox.db")
        app = make_thorn({"THORN_OUTBOX": True, "THORN_SUBSCRIBERS": {"a.*": receiver.url()}})
        app.outbox = outbox
        with outbox.transaction():
            for n in range(5):
                assert app.event("a.b").send({"n": n}).state == "stored"
        with run_worker():
            celery_app.send_task(RELAY_TASK, kwargs={"limit": 2}, queue=queue)
            got = receiver.wait_for(5, WAIT)
            wait_until(lambda: RELAY_TASK in returned, what="the first relay")
            celery_app.send_task(RELAY_TASK, queue=queue)
            wait_until(lambda: len(returned.get(RELAY_TASK, [])) == 2, what="two relays")
        assert returned[RELAY_TASK] == [5, 0]
        assert sorted(r.json()["n"] for r in got) == [0, 1, 2, 3, 4]
        assert len(receiver.received) == 5


class TestPruneTask:
    """thorn.prune_delivery_log applies THORN_DELIVERY_LOG_RETENTION and returns the count."""

    def test_prunes_old_attempts(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        celery_app: Celery,
        queue: str,
        returned: dict[str, list[Any]],
    ) -> None:
        """Attempts past the retention go, except the latest of a failed delivery."""
        log = MemoryDeliveryLog()
        make_thorn({"THORN_DELIVERY_LOG": log, "THORN_DELIVERY_LOG_RETENTION": 3600})
        log.record(attempt("old-ok", ok=True, age=7200))
        log.record(attempt("old-failed", ok=False, age=7200))
        log.record(attempt("recent", ok=True, age=60))
        with run_worker():
            celery_app.send_task(PRUNE_TASK, queue=queue)
            wait_until(lambda: PRUNE_TASK in returned, what="the prune task")
        assert returned[PRUNE_TASK] == [1]
        assert log.latest("old-ok") is None
        assert log.latest("old-failed") is not None
        assert log.latest("recent") is not None
