"""Payload validation cost: ``python -m benchmarks.catalog_bench [--quick]``.

``send()`` of a 1 KiB payload whose event type has a 20-property schema, with
``THORN_VALIDATE_PAYLOADS`` "off" against "raise" (valid payloads, so both send), on the
``disabled`` dispatcher so that only the send path is timed. "raise" is timed twice: with
the compiled fastjsonschema fast path (what Thorn uses when the schema allows it) and with
jsonschema alone (what judges schemas using 2020-12-only keywords, and every refused
payload). The apps alternate, one batch each per repetition, so drift hits all alike.
Target: <= 10 us added per send. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

#: 20 properties of the usual kinds: strings with limits, numbers with bounds, enums, an array.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **{f"s{i}": {"type": "string", "maxLength": 200} for i in range(8)},
        **{f"n{i}": {"type": "integer", "minimum": 0} for i in range(6)},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"enum": ["EUR", "USD", "GBP"]},
        "paid": {"type": "boolean"},
        "placed": {"type": "string", "format": "date-time"},
        "note": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
    },
    "required": ["s0", "n0", "amount", "currency"],
    "additionalProperties": False,
}


def payload() -> dict[str, Any]:
    """A valid payload of about 1 KiB of JSON."""
    data: dict[str, Any] = {f"s{i}": "x" * 90 for i in range(8)}
    data.update({f"n{i}": 1000 + i for i in range(6)})
    data.update(
        amount=12.5,
        currency="EUR",
        paid=True,
        placed="2026-01-01T00:00:00Z",
        note=None,
        tags=["a", "b", "c"],
    )
    return data


def _app(mode: str, *, fast: bool = True) -> Any:
    from thorn_core import Thorn

    app = Thorn(
        {"THORN_DISPATCHER": "disabled", "THORN_VALIDATE_PAYLOADS": mode}, set_as_current=False
    )
    app.event_type("order.created", schema=SCHEMA)
    event = app.event("order.created")
    event.send(payload())  # compiles the validator
    if not fast:
        judge = app.catalog._judges[("order.created", "1")]
        judge.fast = None
    return event


def measure(events: int, reps: int) -> dict[str, Any]:
    """Median microseconds per send() for each variant, and what validation adds."""
    data = payload()
    size = len(json.dumps(data))
    variants = {
        "off": _app("off"),
        "raise (fastjsonschema)": _app("raise"),
        "raise (jsonschema only)": _app("raise", fast=False),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, event in variants.items():
            send = event.send
            start = time.perf_counter()
            for _ in range(events):
                send(data)
            times[name].append((time.perf_counter() - start) / events * 1e6)
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["off"]
    return {
        "payload_bytes": size,
        "properties": len(SCHEMA["properties"]),
        "us_per_send": medians,
        "us_added": {name: value - base for name, value in medians.items() if name != "off"},
        "ratio_to_off": {name: value / base for name, value in medians.items() if name != "off"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="A tiny run (checks it works).")
    args = parser.parse_args()
    events, reps = (200, 3) if args.quick else (5000, 15)
    result = measure(events, reps)
    print(f"send() of {result['payload_bytes']} B, {result['properties']}-property schema")
    print(f"{'variant':<26}{'us/send':>10}{'added':>10}{'ratio':>8}")
    for name, value in result["us_per_send"].items():
        added = result["us_added"].get(name, 0.0)
        ratio = result["ratio_to_off"].get(name, 1.0)
        print(f"{name:<26}{value:>10.2f}{added:>10.2f}{ratio:>8.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
