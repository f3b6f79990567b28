"""The maintenance tasks for Celery beat: relaying the outbox, pruning the delivery log and the
outbox."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.signals import task_postrun
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from thorn_core import Thorn
from thorn_core.dispatchers.celery import PRUNE_TASK, RELAY_TASK
from thorn_core.log import AttemptRecord, MemoryDeliveryLog, utcnow
from thorn_core.receiver import WebhookReceiver
from thorn_flask.models import OutboxEvent
from thorn_flask.outbox import SQLAlchemyOutbox

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


@pytest.fixture
def run_prune(
    run_worker: Callable[..., Any],
    celery_app: Celery,
    queue: str,
    returned: dict[str, list[Any]],
) -> Callable[[], Any]:
    """Run ``thorn.prune_delivery_log`` once on an in-process worker; return its answer."""

    def run() -> Any:
        with run_worker():
            celery_app.send_task(PRUNE_TASK, queue=queue)
            wait_until(lambda: PRUNE_TASK in returned, what="the prune task")
        (answer,) = returned[PRUNE_TASK]
        return answer

    return run


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
    """thorn.prune_delivery_log applies THORN_DELIVERY_LOG_RETENTION to the delivery log and
    the outbox, and returns the counts."""

    def test_prunes_old_attempts(
        self, make_thorn: Callable[..., Thorn], run_prune: Callable[[], Any]
    ) -> None:
        """Attempts past the retention go, except the latest of a failed delivery."""
        log = MemoryDeliveryLog()
        make_thorn({"THORN_DELIVERY_LOG": log, "THORN_DELIVERY_LOG_RETENTION": 3600})
        log.record(attempt("old-ok", ok=True, age=7200))
        log.record(attempt("old-failed", ok=False, age=7200))
        log.record(attempt("recent", ok=True, age=60))
        assert run_prune() == {"attempts": 1, "outbox_events": 0}
        assert log.latest("old-ok") is None
        assert log.latest("old-failed") is not None
        assert log.latest("recent") is not None

    def test_prunes_dispatched_outbox_events(
        self, make_thorn: Callable[..., Thorn], run_prune: Callable[[], Any], tmp_path: Path
    ) -> None:
        """Outbox events dispatched before the retention go; recent and waiting ones stay."""
        engine = create_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
        OutboxEvent.metadata.create_all(engine, tables=[OutboxEvent.__table__])
        sessions = sessionmaker(engine)
        app = make_thorn({"THORN_DELIVERY_LOG_RETENTION": 3600})
        app.outbox = SQLAlchemyOutbox(OutboxEvent, sessions, lambda: None)
        now = utcnow()
        ages = {"old-done": 7200, "recent-done": 60, "old-waiting": None}
        with sessions.begin() as session:
            for name, age in ages.items():
                message = app.event(name.replace("-", ".")).prepare({})
                session.add(
                    OutboxEvent(
                        message=message.to_dict(),
                        created_at=now - datetime.timedelta(seconds=7200),
                        done_at=None if age is None else now - datetime.timedelta(seconds=age),
                    )
                )
        assert run_prune() == {"attempts": 0, "outbox_events": 1}
        with sessions() as session:
            left = session.scalars(select(OutboxEvent.message)).all()
        assert sorted(m["event"] for m in left) == ["old.waiting", "recent.done"]
