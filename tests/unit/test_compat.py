"""Every private upstream name in otel_kit._compat still exists on the installed packages.

An upgrade that moves one fails here, naming it, instead of deep in an export path.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections import deque
from pathlib import Path

import fastapi
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link

from otel_kit import _compat

KIT = Path(_compat.__file__).parent


@pytest.mark.parametrize("name", sorted(_compat._LAZY))
def test_each_lazy_name_imports(name):
    module, attribute = _compat._LAZY[name]
    assert hasattr(importlib.import_module(module), attribute), f"{module}.{attribute} moved"
    assert getattr(_compat, name) is getattr(importlib.import_module(module), attribute)


@pytest.mark.parametrize("logger", [_compat.BATCH_PROCESSOR_LOGGER, _compat.HTTP_LOG_EXPORTER_LOGGER])
def test_the_quieted_loggers_are_modules(logger):
    importlib.import_module(logger)


def test_batch_queue_reads_a_stock_span_processor():
    processor = BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=7, max_export_batch_size=7)
    try:
        queue = _compat.BatchQueue(processor)
        assert isinstance(queue.items, deque)
        assert (queue.limit, queue.full()) == (7, False)
        queue.items.extend(range(7))
        assert queue.full()
        queue.items.clear()
        queue.count_dropped(1)  # the SDK's own counter takes it
    finally:
        processor.shutdown()
    assert not queue.full(), "a shut-down processor's queue is never full: its emit drops"


def test_batch_queue_reads_a_stock_log_processor():
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    processor = _compat.BatchLogRecordProcessor(
        InMemoryLogRecordExporter(), max_queue_size=3, max_export_batch_size=3
    )
    try:
        assert _compat.BatchQueue(processor).limit == 3
    finally:
        processor.shutdown()


def test_ended_span_storage_equals_the_public_views():
    tracer = TracerProvider().get_tracer("t")
    other = tracer.start_span("other")
    span = tracer.start_span("s", attributes={"a": 1}, links=[Link(other.get_span_context(), {"l": 2})])
    span.add_event("e", {"b": 3})
    span.end()
    attributes, events, links = _compat.ended_span_storage(span)
    assert dict(attributes) == dict(span.attributes)
    assert list(events) == list(span.events)
    assert list(links) == list(span.links)


@pytest.mark.parametrize("signal", ["trace_exporter", "_log_exporter"])
def test_grpc_exporters_take_the_senders_hooks(signal):
    module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.grpc.{signal}")
    exporter = next(v for k, v in vars(module).items() if k.startswith("OTLP") and k.endswith("Exporter"))
    for hook in ("_export", "_translate_data", "_count_data"):
        assert hasattr(exporter, hook), f"{exporter.__module__}.{exporter.__name__}.{hook} moved"


@pytest.mark.parametrize("signal", ["trace_exporter", "_log_exporter"])
def test_http_exporters_have_what_the_sender_reads(signal):
    module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.http.{signal}")
    exporter = next(v for k, v in vars(module).items() if k.startswith("OTLP") and k.endswith("Exporter"))
    instance = exporter(endpoint="http://127.0.0.1:9/v1/x")
    try:
        assert isinstance(instance._shutdown, bool)
        assert isinstance(instance._max_request_size, int)
        assert callable(instance._metrics.export_operation)
        assert callable(instance._client.export)
    finally:
        instance.shutdown()


def test_httpx_contrib_calls_the_wrappers_the_kit_replaces():
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    source = inspect.getsource(HTTPXClientInstrumentor._instrument)
    assert "self._handle_request_wrapper" in source
    assert "self._handle_async_request_wrapper" in source
    assert all(callable(wrapper) for wrapper in _compat.httpx_contrib_wrappers())
    assert _compat.httpx_stable_http_mode().name == "HTTP"
    assert _compat.httpx_instrumentor(print, print) is _compat.httpx_instrumentor(print, print)


def test_logging_contrib_keeps_its_handler_on_the_class():
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    assert "_logging_handler" in vars(LoggingInstrumentor)


def test_pika_names():
    from opentelemetry.instrumentation.pika import pika_instrumentor, utils
    from pika.adapters.blocking_connection import BlockingChannel

    for name in ("_enrich_span", "_generate_span_name", "_pika_getter"):
        assert hasattr(utils, name), f"opentelemetry.instrumentation.pika.utils.{name} moved"
    assert list(inspect.signature(utils._enrich_span).parameters) == [
        "span",
        "channel",
        "properties",
        "task_destination",
        "operation",
    ]
    assert "__init__" in vars(_compat.pika_consumer_generator_info())
    assert "self._impl" in inspect.getsource(BlockingChannel.__init__)
    assert f".{_compat.WRAPPED_ORIGINAL}" in inspect.getsource(pika_instrumentor)


def test_psycopg2_cursor_tracer_names():
    from opentelemetry.instrumentation.dbapi import CursorTracer, DatabaseApiIntegration

    base = _compat.psycopg2_cursor_tracer()
    assert list(inspect.signature(CursorTracer._populate_span).parameters) == [
        "self",
        "span",
        "cursor",
        "args",
    ]
    assert list(inspect.signature(CursorTracer._record_metrics).parameters) == [
        "self",
        "cursor",
        "operation_name",
        "start_time",
        "error",
    ]
    assert "self._db_api_integration =" in inspect.getsource(CursorTracer.__init__)
    assert "self._tracer =" in inspect.getsource(DatabaseApiIntegration.__init__)
    assert "self._populate_span(" in inspect.getsource(CursorTracer.traced_execution)
    assert issubclass(base, CursorTracer)


def test_fastapi_telemetry_config():
    config = _compat.fastapi_telemetry_config(fastapi.FastAPI())
    assert config is not None
    assert {"operation_spans", "auto_configure", "exclude"} <= set(config)


def test_the_extension_points_the_kit_overrides():
    from opentelemetry.instrumentation.distro import BaseDistro
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

    for owner in (_compat.BaseConfigurator, BaseDistro):
        assert "_configure" in vars(owner), f"{owner.__name__}._configure moved"
    assert "_instrument" in vars(BaseInstrumentor)


def test_no_other_module_imports_a_private_upstream_name():
    found = []
    for path in sorted(KIT.rglob("*.py")):
        if path.name == "_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] not in ("otel_kit", "__future__") and any(
                    p.startswith("_") and not p.startswith("__") for p in parts
                ):
                    found.append(f"{path.relative_to(KIT.parent)}:{node.lineno} {name}")
    assert not found, "private upstream imports outside otel_kit/_compat.py: " + ", ".join(found)
