"""Telemetry across Celery: one trace from ``send()`` to every attempt in a real worker, and
the metrics of a run with retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver

pytest.importorskip("opentelemetry.sdk", reason="the telemetry tests need opentelemetry-sdk")

from .._otel import OTel
from ._celery_support import WAIT, wait_until

REFUSED_URL = "http://10.20.30.40/hook"


@pytest.fixture
def otel() -> Iterator[OTel]:
    """Fresh SDK providers for the publishing side (and an in-process worker)."""
    providers = OTel()
    yield providers
    providers.shutdown()


@pytest.fixture
def receivers() -> Iterator[Callable[..., WebhookReceiver]]:
    """Start real loopback receivers; all stopped afterwards."""
    started: list[WebhookReceiver] = []

    def start(respond: Callable[[ReceivedWebhook], Reply] | None = None) -> WebhookReceiver:
        receiver = WebhookReceiver(respond=respond).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def failing_once() -> Callable[[ReceivedWebhook], Reply]:
    """A receiver's answers: 503 to the first request, 200 afterwards."""
    calls: list[int] = []
    lock = threading.Lock()

    def respond(_request: ReceivedWebhook) -> Reply:
        with lock:
            calls.append(1)
            first = len(calls) == 1
        return (503, b"busy") if first else (200, b"ok")

    return respond


def read_spans(path: Path) -> list[dict[str, Any]]:
    """The spans a worker subprocess wrote (tests/celery/_otel_worker.py)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def finished_names(path: Path) -> set[tuple[str, int]]:
    """(name, n) for every n up to the number of finished spans of each name."""
    counts: dict[str, int] = {}
    for span in read_spans(path):
        counts[span["name"]] = counts.get(span["name"], 0) + 1
    return {(name, n) for name, total in counts.items() for n in range(1, total + 1)}


class TestOneTrace:
    """The worker's task spans and attempts belong to the trace of the ``send()``."""

    @pytest.mark.parametrize("instrumentation", ["none", "worker", "both"])
    def test_attempts_in_a_worker_descend_from_the_send(
        self, make_thorn, worker_process, receivers, otel, tmp_path, monkeypatch, instrumentation
    ):
        """A success, and a 503 retried by a second task: every attempt's ancestors reach the
        send span, with or without opentelemetry-instrumentation-celery."""
        spans_file = tmp_path / "worker-spans.jsonl"
        monkeypatch.setenv("THORN_TEST_SPANS", str(spans_file))
        instrumentor = None
        if instrumentation != "none":
            celery_otel = pytest.importorskip(
                "opentelemetry.instrumentation.celery",
                reason="needs opentelemetry-instrumentation-celery",
            )
            monkeypatch.setenv("THORN_TEST_CELERY_INSTRUMENTATION", "1")
            if instrumentation == "both":
                instrumentor = celery_otel.CeleryInstrumentor()
                instrumentor.instrument(tracer_provider=otel.tracer_provider)
        ok, flaky = receivers(), receivers(failing_once())
        app = make_thorn({"THORN_RETRY_DELAY": 0.2} | otel.settings())
        worker_process()
        try:
            app.event("order.paid").send(
                {"id": 7}, subscribers=[ok.url("/ok"), flaky.url("/flaky")]
            )
            ok.wait_for(1, timeout=WAIT)
            flaky.wait_for(2, timeout=WAIT)
            wait_until(
                lambda: (
                    finished_names(spans_file)
                    >= {("POST", 3), ("thorn.dispatch_events", 1), ("thorn.deliver", 1)}
                ),
                what="the worker's spans: three attempts and the retry's task",
            )
        finally:
            if instrumentor is not None:
                instrumentor.uninstrument()
        worker_spans = read_spans(spans_file)
        (send,) = otel.finished("thorn.send")
        parents = {s["span_id"]: s["parent_id"] for s in worker_spans}
        parents.update(
            {s.context.span_id: s.parent.span_id if s.parent else None for s in otel.finished()}
        )

        def reaches_send(span_id: int) -> bool:
            seen = 0
            while span_id is not None and seen < 20:
                if span_id == send.context.span_id:
                    return True
                span_id = parents.get(span_id)
                seen += 1
            return False

        attempts = [s for s in worker_spans if s["name"] == "POST"]
        thorn_spans = [
            s for s in worker_spans if s["name"] == "POST" or s["name"].startswith("thorn.")
        ]
        assert sorted(a["attributes"]["thorn.delivery.attempt"] for a in attempts) == [1, 1, 2]
        assert {s["trace_id"] for s in thorn_spans} == {send.context.trace_id}
        assert all(reaches_send(a["span_id"]) for a in attempts), worker_spans
        (dispatch,) = [s for s in worker_spans if s["name"] == "thorn.dispatch_events"]
        assert dispatch["kind"] == "CONSUMER"
        assert dispatch["attributes"]["thorn.subscribers"] == 2
        (retry,) = [a for a in attempts if a["attributes"]["thorn.delivery.attempt"] == 2]
        retry_task = next(s for s in worker_spans if s["span_id"] == retry["parent_id"])
        assert retry_task["name"] == "thorn.deliver"
        assert retry["attributes"]["http.request.resend_count"] == 1
        if instrumentation == "none":
            assert dispatch["parent_id"] == send.context.span_id
        else:
            assert any(s["name"].startswith("run/") for s in worker_spans)
        assert "traceparent" not in ok.received[0].headers  # receivers did not opt in


class TestMetrics:
    """The counters after a run on a real broker: successes, a retried 503, a 410, a refusal."""

    def test_metric_values_after_a_run(self, make_thorn, run_worker, receivers, otel):
        """Counted by outcome: 2 successes, 1 retryable (retried once), 1 gone, 1 refused."""
        ok, flaky, gone = receivers(), receivers(failing_once()), receivers(lambda _r: (410, b""))
        urls = [ok.url("/ok"), flaky.url("/flaky"), gone.url("/gone"), REFUSED_URL]
        app = make_thorn(
            {"THORN_SUBSCRIBERS": {"order.paid": urls}, "THORN_RETRY_DELAY": 0.2} | otel.settings()
        )

        with run_worker():
            app.event("order.paid").send({"id": 1})
            flaky.wait_for(2, timeout=WAIT)
            wait_until(lambda: otel.count("thorn.deliveries") >= 5, what="five recorded deliveries")

        count = otel.count
        assert count("thorn.deliveries", outcome="success") == 2
        assert count("thorn.deliveries", outcome="retryable") == 1
        assert count("thorn.deliveries", outcome="gone") == 1
        assert count("thorn.deliveries", outcome="refused") == 1
        assert count("thorn.deliveries", event="order.paid") == 5
        assert count("thorn.delivery.retries", endpoint=f"http://127.0.0.1:{flaky.port}") == 1
        assert count("thorn.delivery.retries") == 1
        assert count("thorn.endpoints.disabled", reason="gone") == 1
        histogram = {
            (a["thorn.endpoint"], a["thorn.outcome"]): p.count
            for a, p in otel.points("thorn.delivery.duration")
        }
        assert histogram[(f"http://127.0.0.1:{flaky.port}", "retryable")] == 1
        assert histogram[(f"http://127.0.0.1:{flaky.port}", "success")] == 1
