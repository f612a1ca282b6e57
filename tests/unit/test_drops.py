"""A full export queue, for spans and for log records: the oldest go, each drop is counted,
and the kit says how many and which setting sizes the queue (the SDK logged every drop,
without either)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_kit._export.processor import InProcessRowExporter, RowBatchSpanProcessor
from otel_kit._setup import _LogProcessor

# (processor, emit(name)) for a pipeline whose exporter hands each batch's names to `export`.
Pipeline = tuple[Any, Callable[[str], None]]


def _spans(export: Callable[[list[str]], None], **options: Any) -> Pipeline:
    class Stuck(InMemorySpanExporter):
        def export(self, spans):
            export([span.name for span in spans])
            return SpanExportResult.SUCCESS

    processor = RowBatchSpanProcessor(InProcessRowExporter(Stuck), **options)
    provider = TracerProvider(shutdown_on_exit=False)  # shut down here, not again at the suite's exit
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    return processor, lambda name: tracer.start_span(name).end()


def _logs(export: Callable[[list[str]], None], **options: Any) -> Pipeline:
    class Stuck(InMemoryLogRecordExporter):
        def export(self, batch):
            export([record.log_record.body for record in batch])
            return LogRecordExportResult.SUCCESS

    processor = _LogProcessor(Stuck(), **options)
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("t")
    return processor, lambda name: logger.emit(body=name)


def _queue_full_drops(reader: InMemoryMetricReader, signal: str) -> int:
    return sum(
        point.value
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == f"otel.sdk.processor.{signal}.processed"
        for point in metric.data.data_points
        if point.attributes.get("error.type") == "queue_full"
    )


@pytest.mark.parametrize(
    ("pipeline", "signal", "items", "setting"),
    [
        (_spans, "span", "spans", "OTEL_BSP_MAX_QUEUE_SIZE"),
        (_logs, "log", "log records", "OTEL_BLRP_MAX_QUEUE_SIZE"),
    ],
)
def test_a_full_queue_drops_the_oldest_and_says_how_many(
    monkeypatch, caplog, pipeline, signal, items, setting
):
    """The collector is stuck: the queue keeps the newest; every drop reaches the SDK's
    counter, and the log says it once with the number and the queue's setting."""
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    reader = InMemoryMetricReader()
    release, exported = threading.Event(), []

    def export(names: list[str]) -> None:
        release.wait(30)
        exported.extend(names)

    processor, emit = pipeline(
        export,
        max_queue_size=4,
        max_export_batch_size=4,
        schedule_delay_millis=60_000,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    queue = processor._batch_processor._queue
    for i in range(4):  # a full batch: the worker takes it and gets stuck exporting it
        emit(f"first-{i}")
    deadline = time.monotonic() + 10
    while queue and time.monotonic() < deadline:
        time.sleep(0.01)  # polling a condition with a deadline
    assert not queue

    with caplog.at_level(logging.WARNING):
        for i in range(10):  # 4 fill the queue again, then each pushes out the oldest
            emit(f"next-{i}")
        release.set()
        assert processor.force_flush(10_000)

    assert exported == [f"first-{i}" for i in range(4)] + [f"next-{i}" for i in range(6, 10)]
    assert _queue_full_drops(reader, signal) == 6
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]  # "Queue full, ..."
    warnings = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
    assert len(warnings) == 1  # the first drop; the rest wait a minute
    assert f"{items} dropped since the last such warning: 1 " in warnings[0]
    assert f"{setting}=4" in warnings[0]

    with caplog.at_level(logging.WARNING, logger="otel_kit"):
        processor.shutdown()  # says the rest, however soon after the last warning
    warnings = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
    assert len(warnings) == 2
    assert f"{items} dropped since the last such warning: 5 " in warnings[1]
