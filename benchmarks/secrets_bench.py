"""Cost of secret rotation and encryption at rest: ``python -m benchmarks.secrets_bench [--quick]``.

1. Signing, per delivery: :func:`thorn_core.fanout.signed_request` for a subscriber with one
   HMAC secret (today) and for one in a rotation (two live secrets: two ``v1`` entries,
   ``Hook-HMAC`` with the newest), in microseconds.
2. Reading a stored secret, per row: :func:`thorn_core.encryption.decrypt_stored` of a
   ``THORN_SECRET_KEYS`` token, uncached (a fresh cipher each time: what every read would
   cost without the per-process cache) and cached (what the column types do), next to one
   HMAC-SHA256 of the payload.
3. Deliveries per second end to end (the ``default`` dispatcher, a keep-alive receiver in
   its own process, scenario (a) and (b) of docs/performance.md: 1 and 10 subscribers per
   event) with subscribers read from "rows" on every send, as a stored-subscriber source
   does: secrets in clear, secrets encrypted (cached decryption), and encrypted secrets in
   a rotation. The variants alternate, one batch each per repetition, so drift hits all.

Figures are medians of the repetitions; the variants are measured in turns within each
repetition and each ratio (variant / today: cost, or rate) is the median of the ratios of
the repetitions, so that the drift of a busy machine cancels out. Prints a table and, last,
one JSON line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hmac
import json
import statistics
import time
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from benchmarks.loopback_receiver import ReceiverProcess
from benchmarks.scenarios import _loopback_app

PAYLOAD = {"id": 1, "name": "Ada", "email": "ada@example.com", "tags": ["a", "b", "c"]}
OLD_SECRET = "whsec_" + "YmVuY2htYXJrLXNlY3JldC0yNC1ieXRlcyE="
NEW_SECRET = "whsec_" + "bmV3LWJlbmNobWFyay1zZWNyZXQtMjQtYnl0ZSE="
#: A fixed Fernet key (url-safe base64 of 32 bytes): the benchmark's, never a real one.
KEY = "ZGVtby1rZXktZm9yLXRoZS1iZW5jaG1hcmstb25seSE="


def _median_us(step: Callable[[], object], calls: int, reps: int) -> float:
    """Median over ``reps`` repetitions (after one warm-up) of ``step``'s microseconds."""
    found = []
    for rep in range(reps + 1):
        started = time.perf_counter()
        for _ in range(calls):
            step()
        if rep:
            found.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(found)


def _paired_us(
    steps: dict[str, Callable[[], object]], base: str, calls: int, reps: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Microseconds per call of each step, measured in turns within each repetition (so
    drift hits all alike); the medians, and the medians of each step's ratio to ``base``
    taken repetition by repetition."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for rep in range(reps + 1):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(calls):
                step()
            if rep:
                times[name].append((time.perf_counter() - started) / calls * 1e6)
    medians = {name: statistics.median(found) for name, found in times.items()}
    ratios = {
        name: statistics.median(t / b for t, b in zip(found, times[base], strict=True))
        for name, found in times.items()
    }
    return medians, ratios


def _previous(until: dt.datetime) -> str:
    return json.dumps([{"secret": OLD_SECRET, "expires_at": until.isoformat()}])


def signing_and_decrypting_us(calls: int, reps: int) -> dict[str, Any]:
    """Microseconds to sign one delivery with one and with two live secrets, and to read
    one encrypted secret with and without the cache."""
    from thorn_core import Subscriber, Thorn
    from thorn_core.encryption import SecretCipher, cipher_for, decrypt_stored, encrypt_stored
    from thorn_core.fanout import signed_request
    from thorn_core.message import EventMessage

    message = EventMessage(
        event="user.created", data=PAYLOAD, timeout=5.0, retry=True, retry_max=3, retry_delay=1.0
    )
    body = json.dumps(PAYLOAD).encode()
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    found: dict[str, Any] = {}
    with Thorn({}, set_as_current=False) as app:
        subscribers = {
            "one_secret": Subscriber(url="https://example.com/h", hmac_secret=OLD_SECRET),
            "two_secrets": Subscriber(
                url="https://example.com/h",
                hmac_secret=NEW_SECRET,
                previous_secrets=_previous(until),
            ),
        }
        steps = {
            kind: (lambda s=sub: signed_request(app, message, s, body, "delivery-1"))
            for kind, sub in subscribers.items()
        }
        medians, ratio = _paired_us(steps, "one_secret", calls, reps)
    found["sign_one_secret_us"] = round(medians["one_secret"], 2)
    found["sign_two_secrets_us"] = round(medians["two_secrets"], 2)
    found["sign_two_vs_one"] = round(ratio["two_secrets"], 3)

    keys = (KEY,)
    token = encrypt_stored(NEW_SECRET, keys)
    assert decrypt_stored(token, keys) == NEW_SECRET
    found["hmac_sha256_us"] = round(
        _median_us(lambda: hmac.digest(b"k" * 32, body, "sha256"), calls, reps), 2
    )
    found["decrypt_uncached_us"] = round(
        _median_us(lambda: SecretCipher(keys).decrypt(token), max(calls // 10, 10), reps), 2
    )
    cipher_for(keys).decrypt(token)  # fills the process's cache
    found["decrypt_cached_us"] = round(
        _median_us(lambda: decrypt_stored(token, keys), calls, reps), 2
    )
    found["decrypt_uncached_vs_hmac"] = round(
        found["decrypt_uncached_us"] / found["hmac_sha256_us"], 2
    )
    found["decrypt_cached_vs_hmac"] = round(found["decrypt_cached_us"] / found["hmac_sha256_us"], 2)
    return found


class RowSource:
    """A stored-subscriber source over in-memory "rows": each send converts them as the ORM
    adapters do, decrypting the secret columns (cached) when they are encrypted."""

    def __init__(self, rows: list[SimpleNamespace], keys: tuple[str, ...]) -> None:
        self.rows = rows
        self.keys = keys

    def matching(
        self, event: str, sender: Any = None, context: Mapping[str, Any] | None = None
    ) -> list[Any]:
        from thorn_core.encryption import decrypt_stored
        from thorn_core.subscribers import subscriber_from_row

        found = []
        for row in self.rows:
            read = SimpleNamespace(
                **{
                    **vars(row),
                    "hmac_secret": decrypt_stored(row.hmac_secret, self.keys),
                    "previous_secrets": decrypt_stored(row.previous_secrets, self.keys),
                }
            )
            found.append(subscriber_from_row(read))
        return found


def _rows(url: str, count: int, keys: tuple[str, ...], rotating: bool) -> list[SimpleNamespace]:
    import uuid

    from thorn_core.encryption import encrypt_stored

    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    previous = _previous(until) if rotating else ""
    return [
        SimpleNamespace(
            uuid=uuid.uuid4(),
            url=f"{url}?n={n}",
            event="user.*",
            hmac_secret=encrypt_stored(NEW_SECRET if rotating else OLD_SECRET, keys),
            previous_secrets=encrypt_stored(previous, keys),
            hmac_digest="sha256",
            content_type="application/json",
            active=True,
        )
        for n in range(count)
    ]


def deliveries_per_second(url: str, events: int, reps: int) -> tuple[dict[str, Any], int]:
    """Deliveries/s with 1 and 10 subscribers per event for each variant; and how many
    POSTs were sent."""
    from thorn_core import Event

    variants = {"clear": ((), False), "encrypted": ((KEY,), False), "rotating": ((KEY,), True)}
    found: dict[str, Any] = {}
    sent = 0
    for fanout in (1, 10):
        apps = {}
        for name, (keys, rotating) in variants.items():
            app = _loopback_app({"THORN_SECRET_KEYS": list(keys)})
            app.add_subscriber_source(RowSource(_rows(url, fanout, keys, rotating), keys))
            apps[name] = app
        rates: dict[str, list[float]] = {name: [] for name in apps}
        count = max(events // fanout, 20)
        try:
            for rep in range(reps + 1):
                for name, app in apps.items():
                    event = Event("user.created", app=app)
                    started = time.perf_counter()
                    for _ in range(count):
                        result = event.send(PAYLOAD)
                        if not result.ok:
                            raise RuntimeError(result.failed[0].error)
                    sent += count * fanout
                    if rep:  # the first round warms up connections and the cache
                        rates[name].append(count * fanout / (time.perf_counter() - started))
        finally:
            for app in apps.values():
                app.close()
        scenario = "a" if fanout == 1 else "b"
        for name in variants:
            found[f"({scenario})_{name}_deliveries_per_s"] = round(
                statistics.median(rates[name]), 1
            )
            if name != "clear":
                paired = (r / c for r, c in zip(rates[name], rates["clear"], strict=True))
                found[f"({scenario})_{name}_vs_clear"] = round(statistics.median(paired), 3)
    return found, sent


def main() -> None:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    args = parser.parse_args()
    calls, reps, events = (200, 2, 40) if args.quick else (20_000, 15, 600)
    figures = signing_and_decrypting_us(calls, reps)
    receiver = ReceiverProcess()
    try:
        found, sent = deliveries_per_second(receiver.url, events, reps)
        figures.update(found)
        received = receiver.wait_for(sent)
        if received != sent:
            raise RuntimeError(f"receiver got {received} POSTs, {sent} were sent")
    finally:
        receiver.stop()
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
