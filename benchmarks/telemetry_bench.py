"""Telemetry overhead: ``python -m benchmarks.telemetry_bench [--quick]``.

Deliveries per second of the ``default`` dispatcher (one subscriber per event, a keep-alive
receiver in its own process) with telemetry

- ``off``: ``THORN_TELEMETRY = False``;
- ``api``: the OpenTelemetry API installed and no SDK configured (what a site gets from the
  ``otel`` extra before it sets providers up);
- ``sdk``: SDK providers whose exporters drop everything (a batch span processor, a metric
  reader that is never collected): the cost of recording spans and metrics, not of shipping
  them.

The three apps alternate, one batch each per repetition, so drift hits all alike. Also the
microseconds telemetry adds to one delivery, measured apart from HTTP (the spans, metrics
and log fields of one attempt). Target: ``api`` within 5 % of ``off``. Prints a table and,
last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.loopback_receiver import ReceiverProcess
from benchmarks.scenarios import _loopback_app

PAYLOAD = {"id": 1, "name": "Ada"}


def _sdk_settings() -> dict[str, Any]:
    """SDK providers that record everything and export nothing."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return {"THORN_TRACER_PROVIDER": tracer_provider, "THORN_METER_PROVIDER": meter_provider}


def deliveries_per_second(url: str, events: int, reps: int) -> dict[str, Any]:
    """Deliveries/s with telemetry off, API only and SDK, alternating; medians and ratios."""
    from thorn_core import Event

    subscribers = {"user.*": [{"url": url}]}
    apps = {
        "off": _loopback_app({"THORN_SUBSCRIBERS": subscribers, "THORN_TELEMETRY": False}),
        "api": _loopback_app({"THORN_SUBSCRIBERS": subscribers}),
        "sdk": _loopback_app({"THORN_SUBSCRIBERS": subscribers, **_sdk_settings()}),
    }
    rates: dict[str, list[float]] = {name: [] for name in apps}
    try:
        for rep in range(reps + 1):
            for name, app in apps.items():
                event = Event("user.created", app=app)
                started = time.perf_counter()
                for _ in range(events):
                    result = event.send(PAYLOAD)
                    if not result.ok:
                        raise RuntimeError(result.failed[0].error)
                elapsed = time.perf_counter() - started
                if rep:  # the first round warms up connections
                    rates[name].append(events / elapsed)
        if not apps["api"].telemetry.active or not apps["sdk"].telemetry.active:
            raise RuntimeError("telemetry is not active: is opentelemetry-api installed?")
    finally:
        for app in apps.values():
            app.close()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "off_deliveries_per_s": round(medians["off"], 1),
        "api_deliveries_per_s": round(medians["api"], 1),
        "sdk_deliveries_per_s": round(medians["sdk"], 1),
        "api_vs_off": round(medians["api"] / medians["off"], 3),
        "sdk_vs_off": round(medians["sdk"] / medians["off"], 3),
    }


def telemetry_us(calls: int, reps: int) -> dict[str, Any]:
    """Microseconds the telemetry of one delivery costs without HTTP: send span, attempt
    span, its outcome and duration, the deliveries counter, with the API only and the SDK."""
    from thorn_core import Subscriber
    from thorn_core.delivery import Delivery, DeliveryRequest
    from thorn_core.message import EventMessage

    subscriber = Subscriber(event="user.created", url="https://hooks.example.com/hook")
    message = EventMessage(
        event="user.created", data=PAYLOAD, timeout=3.0, retry=True, retry_max=3, retry_delay=1
    )
    request = DeliveryRequest(
        id="d", event="user.created", subscriber=subscriber, body=b"{}", headers={}, timeout=3.0
    )
    delivery = Delivery(
        id="d", event="user.created", subscriber=subscriber, ok=True, status_code=200
    )
    found: dict[str, Any] = {}
    for name, settings in (("api", {}), ("sdk", _sdk_settings())):
        app = _loopback_app(settings)
        telemetry = app.telemetry
        per_call = []
        for rep in range(reps + 1):
            started = time.perf_counter()
            for _ in range(calls):
                with telemetry.send(message, app) as send:
                    with telemetry.attempt(request, 1) as attempt:
                        attempt.finish(delivery)
                    telemetry.delivered(delivery)
                    send.set("thorn.subscribers", 1)
            if rep:
                per_call.append((time.perf_counter() - started) / calls * 1e6)
        found[f"{name}_telemetry_us_per_delivery"] = round(statistics.median(per_call), 1)
        app.close()
    return found


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer events and repetitions")
    args = parser.parse_args()
    events, reps, calls = (200, 2, 500) if args.quick else (1500, 9, 5000)
    receiver = ReceiverProcess()
    try:
        figures = deliveries_per_second(receiver.url, events, reps)
        expected = (reps + 1) * events * 3
        received = receiver.wait_for(expected)
        if received != expected:
            raise RuntimeError(f"receiver got {received} POSTs, {expected} were sent")
    finally:
        receiver.stop()
    figures.update(telemetry_us(calls, reps))
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    target = "met" if figures["api_vs_off"] >= 0.95 else "NOT met"
    print(f"target api (no SDK) within 5 % of off: {target}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
