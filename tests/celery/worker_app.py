"""The Celery app and Thorn app of the worker subprocesses the tests start (``celery -A``).

It is configured as a deployment would configure its workers: the Celery app names its
broker and includes Thorn's tasks; the Thorn app is built at import, before the worker
starts, with the same settings as the publishing side. Each process that runs a Thorn task
leaves a file named after its pid in ``THORN_TEST_PID_DIR``, so a test knows whom to kill.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import task_prerun, worker_ready

from thorn_core import Thorn, signals

_queue = os.environ["THORN_TEST_QUEUE"]

if os.environ.get("THORN_TEST_SPANS"):
    # A telemetry test: the OpenTelemetry SDK writes this worker's spans to that file.
    import _otel_worker  # noqa: F401 - importing it configures the SDK

celery_app = Celery(
    "thorn-test-worker",
    broker=os.environ["THORN_TEST_BROKER"],
    include=["thorn_core.dispatchers.celery"],
)
celery_app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    # Redis: a message a dead worker held is visible again after 2 s (the default is one
    # hour), and workers look for such messages every second.
    # The unacknowledged-message bookkeeping is this test's own, so the short timeout never
    # touches the messages of other Celery users of the same Redis.
    broker_transport_options={
        "visibility_timeout": 2,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
        "unacked_key": f"{_queue}.unacked",
        "unacked_index_key": f"{_queue}.unacked_index",
        "unacked_mutex_key": f"{_queue}.unacked_mutex",
    },
)

thorn = Thorn(
    {
        "THORN_DISPATCHER": "celery",
        "THORN_CELERY_APP": celery_app,
        "THORN_CELERY_QUEUE": _queue,
        "THORN_RECIPIENT_VALIDATORS": json.loads(os.environ["THORN_TEST_VALIDATORS"]),
        "THORN_RETRY_DELAY": 0.2,
        # A test's own settings (endpoint health, slow queue...), as JSON.
        **json.loads(os.environ.get("THORN_TEST_SETTINGS") or "{}"),
    }
)

_pid_dir = Path(os.environ["THORN_TEST_PID_DIR"])


@task_prerun.connect(weak=False)
def _record_pid(**_: Any) -> None:
    (_pid_dir / str(os.getpid())).touch()


@signals.subscriber_deactivated.connect_via(thorn, weak=False)
def _record_deactivation(_: Any, *, subscriber: Any, **__: Any) -> None:
    # Which process switched a failing subscriber off (tests/celery/test_endpoint_health.py).
    (_pid_dir / f"deactivated-{subscriber.uuid}").write_text(str(os.getpid()))


@worker_ready.connect(weak=False)
def _short_poll(sender: Any = None, **_: Any) -> None:
    # The event loop sees a shutdown request only when its poll returns, which an idle AMQP
    # connection delays by up to 10 s; a short timer keeps warm shutdowns quick.
    hub = getattr(sender, "hub", None)
    if hub is not None:
        hub.call_repeatedly(0.1, lambda: None)
