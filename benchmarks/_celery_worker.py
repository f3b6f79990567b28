"""The Celery and Thorn apps of the benchmark's worker subprocesses (``celery -A``).

Configured from the environment by :mod:`benchmarks.celery_bench`: broker, queue, and the
loopback receiver's network allowed by the recipient validators.
"""

from __future__ import annotations

import json
import os

from celery import Celery

from thorn_core import Thorn

celery_app = Celery(
    "thorn-bench-worker",
    broker=os.environ["THORN_BENCH_BROKER"],
    include=["thorn_core.dispatchers.celery"],
)
celery_app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=int(os.environ.get("THORN_BENCH_PREFETCH", "4")),
    # Redis: each thread or greenlet acknowledges on its own connection; kombu's default of
    # 10 per channel is too few for a pool of 50 greenlets.
    broker_transport_options={"max_connections": 100},
    broker_pool_limit=100,
)

thorn = Thorn(
    {
        "THORN_DISPATCHER": "celery",
        "THORN_CELERY_APP": celery_app,
        "THORN_CELERY_QUEUE": os.environ["THORN_BENCH_QUEUE"],
        "THORN_RECIPIENT_VALIDATORS": [
            ["ensure_protocol", ["http"]],
            ["block_internal_ips", []],
            ["allow_cidr_network", ["127.0.0.0/8"]],
        ],
        # A benchmark's own settings (benchmarks/isolation_bench.py), as JSON.
        **json.loads(os.environ.get("THORN_BENCH_SETTINGS") or "{}"),
    }
)
