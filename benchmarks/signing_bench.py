"""Cost of ed25519 (``v1a``) signatures against today's single HMAC:
``python -m benchmarks.signing_bench [--quick]``.

1. Signing, per delivery: :func:`thorn_core.fanout.signed_request` (every signature header
   of one delivery) for a subscriber with one HMAC secret (``Hook-HMAC`` + ``v1``) and for
   one with a ``whsk_`` key (``v1a`` only), in microseconds.
2. Verifying, per request: :func:`thorn_core.verification.verify_request` on the receiver's
   side with the HMAC secret and with the ``whpk_`` public key, in microseconds. (1) and (2)
   alternate batch by batch, as (3) does.
3. Deliveries per second end to end (the ``default`` dispatcher, one subscriber per event, a
   keep-alive receiver in its own process) with each kind of subscriber; the two apps
   alternate, one batch each per repetition, so drift hits both alike.

Figures are medians of the repetitions; ratios are ed25519 / HMAC (cost) or ed25519 / HMAC
(rate). Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.loopback_receiver import ReceiverProcess
from benchmarks.scenarios import _loopback_app

PAYLOAD = {"id": 1, "name": "Ada", "email": "ada@example.com", "tags": ["a", "b", "c"]}
HMAC_SECRET = "whsec_" + "YmVuY2htYXJrLXNlY3JldC0yNC1ieXRlcyE="


def _batch_us(step: Callable[[], object], calls: int) -> float:
    """Microseconds per call of ``step`` over ``calls`` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - started) / calls * 1e6


def signing_and_verifying_us(calls: int, reps: int) -> dict[str, Any]:
    """Microseconds to sign one delivery, and to verify one, with each kind of secret; the
    four measurements alternate, one batch each per repetition, so drift hits all alike."""
    from thorn_core import Subscriber, Thorn
    from thorn_core.ed25519 import generate_keypair
    from thorn_core.fanout import signed_request
    from thorn_core.message import EventMessage
    from thorn_core.verification import verify_request

    signing_key, public = generate_keypair()
    message = EventMessage(
        event="user.created", data=PAYLOAD, timeout=5.0, retry=True, retry_max=3, retry_delay=1.0
    )
    body = json.dumps(PAYLOAD).encode()
    steps: dict[str, Callable[[], object]] = {}
    with Thorn({}, set_as_current=False) as app:
        for kind, secret, verify_with in (
            ("hmac", HMAC_SECRET, HMAC_SECRET),
            ("ed25519", signing_key, public),
        ):
            subscriber = Subscriber(url="https://example.com/hook", hmac_secret=secret)
            headers = dict(signed_request(app, message, subscriber, body, "delivery-1").headers)
            steps[f"sign_{kind}_us"] = functools.partial(
                signed_request, app, message, subscriber, body, "delivery-1"
            )
            steps[f"verify_{kind}_us"] = functools.partial(
                verify_request, headers, body, verify_with
            )
        times: dict[str, list[float]] = {name: [] for name in steps}
        for rep in range(reps + 1):
            for name, step in steps.items():
                spent = _batch_us(step, calls)
                if rep:  # the first round warms up caches
                    times[name].append(spent)
    found: dict[str, Any] = {name: round(statistics.median(t), 2) for name, t in times.items()}
    found["sign_ed25519_vs_hmac"] = round(found["sign_ed25519_us"] / found["sign_hmac_us"], 2)
    found["verify_ed25519_vs_hmac"] = round(found["verify_ed25519_us"] / found["verify_hmac_us"], 2)
    return found


def deliveries_per_second(url: str, events: int, reps: int) -> dict[str, Any]:
    """Deliveries/s to one HMAC subscriber and to one ed25519 subscriber, alternating."""
    from thorn_core import Event
    from thorn_core.ed25519 import generate_signing_key

    apps = {
        kind: _loopback_app({"THORN_SUBSCRIBERS": {"user.*": [{"url": url, "hmac_secret": s}]}})
        for kind, s in (("hmac", HMAC_SECRET), ("ed25519", generate_signing_key()))
    }
    rates: dict[str, list[float]] = {kind: [] for kind in apps}
    try:
        for rep in range(reps + 1):
            for kind, app in apps.items():
                event = Event("user.created", app=app)
                started = time.perf_counter()
                for _ in range(events):
                    result = event.send(PAYLOAD)
                    if not result.ok:
                        raise RuntimeError(result.failed[0].error)
                if rep:  # the first round warms up connections
                    rates[kind].append(events / (time.perf_counter() - started))
    finally:
        for app in apps.values():
            app.close()
    hmac_rate = statistics.median(rates["hmac"])
    ed_rate = statistics.median(rates["ed25519"])
    return {
        "hmac_deliveries_per_s": round(hmac_rate, 1),
        "ed25519_deliveries_per_s": round(ed_rate, 1),
        "deliveries_ed25519_vs_hmac": round(ed_rate / hmac_rate, 3),
    }


def main() -> None:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    args = parser.parse_args()
    calls, events, reps = (500, 200, 3) if args.quick else (5000, 1500, 7)
    figures = signing_and_verifying_us(calls, reps)
    receiver = ReceiverProcess()
    try:
        figures.update(deliveries_per_second(receiver.url, events, reps))
        expected = (reps + 1) * events * 2
        received = receiver.wait_for(expected)
        if received != expected:
            raise RuntimeError(f"receiver got {received} POSTs, {expected} were sent")
    finally:
        receiver.stop()
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
