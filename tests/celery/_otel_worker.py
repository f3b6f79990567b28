"""The OpenTelemetry SDK of a worker subprocess in a telemetry test (``THORN_TEST_SPANS``).

A deployment configures the SDK where it creates its Celery app; so does this worker. Each
finished span is written as one JSON line to the file ``THORN_TEST_SPANS`` names, for the
test to read. With ``THORN_TEST_CELERY_INSTRUMENTATION``, opentelemetry-instrumentation-celery
traces the tasks too.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class JSONLinesExporter(SpanExporter):
    """Append each span (names, ids, kind, attributes) to a file, one JSON object a line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_dict(span)) + "\n" for span in spans]
        with self.lock, open(self.path, "a") as out:
            out.writelines(lines)
        return SpanExportResult.SUCCESS


def span_dict(span: ReadableSpan) -> dict[str, Any]:
    """What the tests compare of a span."""
    assert span.context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": span.context.trace_id,
        "span_id": span.context.span_id,
        "parent_id": span.parent.span_id if span.parent else None,
        "attributes": dict(span.attributes or {}),
    }


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(JSONLinesExporter(os.environ["THORN_TEST_SPANS"])))
trace.set_tracer_provider(provider)

if os.environ.get("THORN_TEST_CELERY_INSTRUMENTATION"):
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().instrument(tracer_provider=provider)
