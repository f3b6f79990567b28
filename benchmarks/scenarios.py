"""One benchmark scenario per process: ``python -m benchmarks.scenarios NAME --url URL ...``.

Prints one JSON line: microseconds per event for each repetition, the number of POSTs made,
the peak RSS of the process, and scenario-specific counts. ``benchmarks.__main__`` runs
every scenario in a fresh process and compares them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import resource
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

#: About 1 KiB of JSON, as the baselines and Thorn send it.
PAYLOAD: dict[str, Any] = {
    "id": 12345,
    "event": "user.created",
    "user": {"name": "Ada Lovelace", "email": "ada@example.com", "bio": "x" * 700},
    "tags": ["a", "b", "c"],
    "created_at": "2026-11-30T12:00:00+00:00",
}
SECRET = "whsec_" + base64.b64encode(b"benchmark-secret-0123456").decode()


def _timed(step: Callable[[], int], events: int, reps: int, warmup: int) -> tuple[list[float], int]:
    """Run ``step`` (one event, returns POSTs made) ``events`` times per repetition."""
    posts = 0
    for _ in range(warmup):
        posts += step()
    per_event: list[float] = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(events):
            posts += step()
        per_event.append((time.perf_counter() - start) / events * 1e6)
    return per_event, posts


def _urls(base: str, subscribers: int) -> list[str]:
    return [f"{base}/{i}" for i in range(subscribers)]


def hand_loop(args: argparse.Namespace) -> dict[str, Any]:
    """What a user writes instead: one requests.Session, serial POSTs, an HMAC header."""
    import requests

    session = requests.Session()
    urls = _urls(args.url, args.subscribers)
    key = SECRET.encode()

    def step() -> int:
        body = json.dumps(PAYLOAD).encode()
        signature = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
        for url in urls:
            response = session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json", "Hook-HMAC": signature},
                timeout=3,
            )
            response.raise_for_status()
        return len(urls)

    return _result(*_timed(step, args.events, args.reps, args.warmup))


def raw_loop(args: argparse.Namespace) -> dict[str, Any]:
    """The single-thread limit: keep-alive http.client, serial POSTs, an HMAC header."""
    parts = urlsplit(args.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=3)
    paths = [urlsplit(u).path for u in _urls(args.url, args.subscribers)]
    key = SECRET.encode()

    def step() -> int:
        body = json.dumps(PAYLOAD).encode()
        signature = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
        headers = {"Content-Type": "application/json", "Hook-HMAC": signature}
        for path in paths:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(response.status)
        return len(paths)

    return _result(*_timed(step, args.events, args.reps, args.warmup))


def _loopback_app(settings: dict[str, Any], **kwargs: Any) -> Any:
    from thorn_core import Thorn
    from thorn_core.validators import allow_cidr_network, block_internal_ips, ensure_protocol

    return Thorn(
        {
            "THORN_RECIPIENT_VALIDATORS": [
                ensure_protocol("http", "https"),
                block_internal_ips(),
                allow_cidr_network("127.0.0.0/8"),
            ],
            **settings,
        },
        set_as_current=False,
        **kwargs,
    )


def thorn_default(args: argparse.Namespace) -> dict[str, Any]:
    """Thorn's default dispatcher: every safety check on, fan-out on its thread pool."""
    from thorn_core import Event

    subscribers = [{"url": url, "hmac_secret": SECRET} for url in _urls(args.url, args.subscribers)]
    app = _loopback_app({"THORN_SUBSCRIBERS": {"user.*": subscribers}})
    event = Event("user.created", app=app)

    def step() -> int:
        result = event.send(PAYLOAD)
        if not result.ok:
            raise RuntimeError(result.failed[0].error)
        return len(result.deliveries)

    try:
        return _result(*_timed(step, args.events, args.reps, args.warmup))
    finally:
        app.close()


def no_subscriber(args: argparse.Namespace) -> dict[str, Any]:
    """``send()`` of an event none of 50 static subscribers subscribes to."""
    from thorn_core import Event

    static = {f"svc{i}.*": f"{args.url}/{i}" for i in range(50)}
    app = _loopback_app({"THORN_SUBSCRIBERS": static})
    event = Event("user.created", app=app)

    def step() -> int:
        event.send(PAYLOAD)
        return 0

    try:
        return _result(*_timed(step, args.events, args.reps, args.warmup))
    finally:
        app.close()


def stored_pair(args: argparse.Namespace) -> dict[str, Any]:
    """``send()`` with 10 and with ``--stored`` non-matching stored subscribers, measured in
    alternation in one process, so that the machine's drift affects both alike."""
    from benchmarks.stores import PostgresSubscribers, SQLiteSubscribers
    from thorn_core import Event

    kind = PostgresSubscribers if args.store == "postgres" else SQLiteSubscribers
    sides: dict[str, Any] = {}
    for label, count in (("small", 10), ("large", args.stored)):
        source = kind(count, event="order.created")
        app = _loopback_app({})
        app.add_subscriber_source(source)
        sides[label] = (app, source, Event("user.created", app=app))
    timings: dict[str, list[float]] = {"small": [], "large": []}
    try:
        for _, _, event in sides.values():
            for _ in range(args.warmup):
                event.send(PAYLOAD)
        for _ in range(args.reps):
            for label, (_, _, event) in sides.items():
                start = time.perf_counter()
                for _ in range(args.events):
                    event.send(PAYLOAD)
                timings[label].append((time.perf_counter() - start) / args.events * 1e6)
        sends = args.events * args.reps + args.warmup
        result = _result(timings["small"], 0)
        result["large_us_per_event"] = timings["large"]
        result["queries_per_send"] = sides["large"][1].queries / sends
        return result
    finally:
        for app, source, _ in sides.values():
            app.close()
            source.close()


def _result(per_event: list[float], posts: int) -> dict[str, Any]:
    return {
        "us_per_event": per_event,
        "posts": posts,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


SCENARIOS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "hand": hand_loop,
    "raw": raw_loop,
    "thorn": thorn_default,
    "nosub": no_subscriber,
    "stored": stored_pair,
}


def main() -> None:
    """Run one scenario and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--url", default="http://127.0.0.1:9/hook")
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--store", choices=["none", "sqlite", "postgres"], default="none")
    parser.add_argument("--stored", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to; -1: do not pin")
    args = parser.parse_args()
    if 0 <= args.cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {args.cpu})
    print(json.dumps(SCENARIOS[args.scenario](args)))


if __name__ == "__main__":
    main()
