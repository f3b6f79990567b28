"""OpenTelemetry SDK providers with in-memory exporters, for the telemetry tests."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class OTel:
    """An SDK tracer and meter provider with in-memory exporters, passed to apps explicitly."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def settings(self) -> dict[str, Any]:
        return {
            "THORN_TRACER_PROVIDER": self.tracer_provider,
            "THORN_METER_PROVIDER": self.meter_provider,
        }

    def finished(self, name: str | None = None) -> list[Any]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of every point of ``metric``."""
        found: list[tuple[dict[str, Any], Any]] = []
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found.extend((dict(p.attributes), p) for p in item.data.data_points)
        return found

    def count(self, metric: str, **labels: str) -> int:
        """The sum of a counter's points whose attributes include ``labels``."""
        wanted = {f"thorn.{k}": v for k, v in labels.items()}
        return sum(p.value for a, p in self.points(metric) if wanted.items() <= a.items())

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
