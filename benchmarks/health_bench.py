"""Endpoint-health overhead: ``python -m benchmarks.health_bench [--quick]``.

1. Deliveries per second of the healthy path (the ``default`` dispatcher, one subscriber
   per event, a keep-alive receiver in its own process) with the health kept in Redis
   (``THORN_HEALTH_URL``) against in this process's memory. The two apps alternate, one
   short batch each per repetition, so drift hits both alike; the ratio is the median of
   the repetitions' ratios. Target: Redis >= 0.9x memory.
2. The cost of one admit + release + record (what a delivery adds), in microseconds, for
   the memory store and the Redis store, for a subscriber with limits (a rate and a cap:
   two round trips) and without (admitted locally while the endpoint was seen closed in
   the last 0.25 s; the record rides with the next round trip).

Figures are medians of the repetitions; needs Redis at 127.0.0.1:6379. Prints a table and,
last, one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
import uuid
from typing import Any

from benchmarks.loopback_receiver import ReceiverProcess
from benchmarks.scenarios import _loopback_app

REDIS_URL = "redis://127.0.0.1:6379/0"
PAYLOAD = {"id": 1, "name": "Ada"}


def _drop(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def deliveries_per_second(url: str, events: int, reps: int) -> dict[str, Any]:
    """Healthy-path deliveries/s with the memory store and the Redis store, alternating."""
    from thorn_core import Event

    prefix = f"thorn-bench:{uuid.uuid4().hex}:"
    subscribers = {"user.*": [{"url": url}]}
    apps = {
        "memory": _loopback_app({"THORN_SUBSCRIBERS": subscribers}),
        "redis": _loopback_app({"THORN_SUBSCRIBERS": subscribers, "THORN_HEALTH_URL": REDIS_URL}),
    }
    apps["redis"].health.prefix = prefix  # type: ignore[attr-defined]
    rates: dict[str, list[float]] = {name: [] for name in apps}
    try:
        for rep in range(reps + 1):
            order = list(apps.items())
            for name, app in order if rep % 2 else order[::-1]:  # neither always goes first
                event = Event("user.created", app=app)
                started = time.perf_counter()
                for _ in range(events):
                    result = event.send(PAYLOAD)
                    if not result.ok:
                        raise RuntimeError(result.failed[0].error)
                elapsed = time.perf_counter() - started
                if rep:  # the first round warms up connections and scripts
                    rates[name].append(events / elapsed)
    finally:
        for app in apps.values():
            app.close()
        _drop(prefix)
    memory = statistics.median(rates["memory"])
    redis_rate = statistics.median(rates["redis"])
    # Each repetition's two batches ran back to back: their ratio cancels the drift of a
    # busy machine better than the ratio of the medians.
    paired = [r / m for r, m in zip(rates["redis"], rates["memory"], strict=True)]
    return {
        "memory_deliveries_per_s": round(memory, 1),
        "redis_deliveries_per_s": round(redis_rate, 1),
        "redis_vs_memory": round(statistics.median(paired), 3),
    }


def admit_record_us(calls: int, reps: int) -> dict[str, Any]:
    """Microseconds of one admit + release + record, memory and Redis."""
    from thorn_core.health import MemoryHealthStore
    from thorn_core.health_redis import RedisHealthStore
    from thorn_core.settings import Settings

    settings = Settings()
    prefix = f"thorn-bench:{uuid.uuid4().hex}:"
    stores = {
        "memory": MemoryHealthStore(settings),
        "redis": RedisHealthStore(REDIS_URL, settings, prefix=prefix),
    }
    found: dict[str, Any] = {}
    try:
        for (name, store), (limited, rate, cap) in itertools.product(
            stores.items(), [("limited", 1e9, 1000), ("unlimited", None, None)]
        ):
            per_call = []
            for rep in range(reps + 1):
                started = time.perf_counter()
                for i in range(calls):
                    key = f"http://e{i % 10}.example:80"
                    store.admit(key, rate_limit=rate, max_in_flight=cap)
                    store.release(key)
                    store.record(key, ok=True, duration=0.01)
                if rep:
                    per_call.append((time.perf_counter() - started) / calls * 1e6)
            found[f"{name}_{limited}_admit_record_us"] = round(statistics.median(per_call), 1)
    finally:
        for store in stores.values():
            store.close()
        _drop(prefix)
    return found


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer events and repetitions")
    args = parser.parse_args()
    events, reps, calls = (200, 5, 500) if args.quick else (300, 31, 3000)
    receiver = ReceiverProcess()
    try:
        figures = deliveries_per_second(receiver.url, events, reps)
        expected = (reps + 1) * events * 2
        received = receiver.wait_for(expected)
        if received != expected:
            raise RuntimeError(f"receiver got {received} POSTs, {expected} were sent")
    finally:
        receiver.stop()
    figures.update(admit_record_us(calls, reps))
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    target = "met" if figures["redis_vs_memory"] >= 0.9 else "NOT met"
    print(f"target redis >= 0.9x memory: {target}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
