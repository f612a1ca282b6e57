"""One kit per test process (providers are process-global), exporting spans to memory."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_kit

_exporter = InMemorySpanExporter()


@pytest.fixture(scope="session")
def kit() -> otel_kit.Telemetry:
    telemetry = otel_kit.init(
        "unit",
        traces_exporter="none",
        logs_exporter="none",
        metrics_exporter="prometheus",
        prometheus_port=0,
        prometheus_host="127.0.0.1",
    )
    assert telemetry.providers is not None
    telemetry.providers.tracer_provider.add_span_processor(SimpleSpanProcessor(_exporter))
    return telemetry


@pytest.fixture
def spans(kit: otel_kit.Telemetry) -> SpanLog:
    _exporter.clear()
    return SpanLog()


class SpanLog:
    """The spans finished so far in this test."""

    def all(self) -> list[ReadableSpan]:
        return list(_exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        found = [span for span in self.all() if span.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.all()]}"
        return found[0]
