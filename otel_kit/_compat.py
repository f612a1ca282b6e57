"""Every private name of an upstream package the kit touches, each with why the public API is not enough.

They hold for the versions pinned in pyproject.toml. tests/unit/test_compat.py checks each one
against the installed packages, so an upgrade fails there, naming what moved, rather than deep
in an export path or a request. The rest of the kit uses only the public names given here.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.attributes import BoundedAttributes

if TYPE_CHECKING:  # what the lazy names below are, for type checkers
    from opentelemetry._logs import NoOpLoggerProvider, set_logger_provider  # noqa: F401
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs  # noqa: F401
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (  # noqa: F401
        OTLPLogExporter as GrpcLogExporter,
    )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # noqa: F401
        OTLPLogExporter as HttpLogExporter,
    )
    from opentelemetry.sdk._configuration import _BaseConfigurator as BaseConfigurator  # noqa: F401
    from opentelemetry.sdk._logs import (  # noqa: F401
        LoggerProvider,
        ReadableLogRecord,
        ReadWriteLogRecord,
    )
    from opentelemetry.sdk._logs.export import (  # noqa: F401
        BatchLogRecordProcessor,
        ConsoleLogRecordExporter,
        LogRecordExporter,
        LogRecordExportResult,
    )

# The logs SDK and its OTLP exporters live in private modules upstream while logs are in
# development. Imported on first use (PEP 562): the configurator's module costs 136 ms of
# imports and is needed only under opentelemetry-instrument, the logs SDK not in the export child.
_LAZY = {
    "set_logger_provider": ("opentelemetry._logs", "set_logger_provider"),
    "NoOpLoggerProvider": ("opentelemetry._logs", "NoOpLoggerProvider"),
    "BaseConfigurator": ("opentelemetry.sdk._configuration", "_BaseConfigurator"),
    "LoggerProvider": ("opentelemetry.sdk._logs", "LoggerProvider"),
    "ReadableLogRecord": ("opentelemetry.sdk._logs", "ReadableLogRecord"),
    "ReadWriteLogRecord": ("opentelemetry.sdk._logs", "ReadWriteLogRecord"),
    "BatchLogRecordProcessor": ("opentelemetry.sdk._logs.export", "BatchLogRecordProcessor"),
    "ConsoleLogRecordExporter": ("opentelemetry.sdk._logs.export", "ConsoleLogRecordExporter"),
    "LogRecordExporter": ("opentelemetry.sdk._logs.export", "LogRecordExporter"),
    "LogRecordExportResult": ("opentelemetry.sdk._logs.export", "LogRecordExportResult"),
    "GrpcLogExporter": ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    "HttpLogExporter": ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
    "encode_logs": ("opentelemetry.exporter.otlp.proto.common._log_encoder", "encode_logs"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


# Loggers the kit rate-limits (otel_kit._export.sdk_warnings): the modules log from their own names.
BATCH_PROCESSOR_LOGGER = "opentelemetry.sdk._shared_internal"  # "Queue full, dropping spans/logs."
HTTP_LOG_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http._log_exporter"

# contrib's pika instrumentor keeps a channel's unwrapped publish here, and uninstruments with it.
WRAPPED_ORIGINAL = "_original_function"


# ---- the SDK's batch processors --------------------------------------------------------------


class BatchQueue:
    """The queue inside a stock BatchSpanProcessor or BatchLogRecordProcessor.

    The stock processor logs "Queue full, dropping ..." for every item it drops, with no count
    and no setting (and for log records from inside the handler exporting them); the kit
    pushes out the oldest itself on a full queue and counts the drops in the SDK's own counter.
    The queue is one deque for the processor's life: a fork clears it, never replaces it.
    """

    __slots__ = ("_batch", "items", "limit")

    def __init__(self, processor: Any) -> None:
        self._batch = processor._batch_processor
        self.items: deque = self._batch._queue  # the newest on the left, as the stock emit puts them
        self.limit: int = self._batch._max_queue_size

    @property
    def batch(self) -> Any:
        """The SDK's BatchProcessor: `emit` queues an item, `shutdown(timeout_millis)` drains it."""
        return self._batch

    def full(self) -> bool:
        return len(self.items) >= self.limit and not self._batch._shutdown

    def count_dropped(self, count: int) -> None:
        """Add to otel_sdk_processor_{span,log}_processed{error_type="queue_full"}."""
        self._batch._metrics.drop_items(count)


def ended_span_storage(span: Any) -> tuple[Mapping[str, Any] | None, Sequence, Sequence]:
    """An ended span's attributes, events and links as stored.

    The public views copy through a lock per item (attributes 3.8 us, events and links 1.3 us
    each even when empty); an ended span no longer changes, so its storage can be read as is.
    """
    attributes = span._attributes
    if isinstance(attributes, BoundedAttributes):
        attributes = attributes._dict
    return attributes, span._events, span._links


# ---- the stock OTLP exporters, sending requests the kit has already split to fit -------------


class GrpcSender:
    """Mixin for a stock OTLP gRPC exporter: `send` goes through its export (retries, metadata,
    timeouts) with `data` an (anything, items) pair that `request` turns into the protobuf request.

    The exporter encodes a whole batch itself with no size limit; these are its per-signal hooks.
    """

    def request(self, data: tuple[Any, int]) -> Any:
        return data[0]

    def send(self, data: tuple[Any, int]) -> Any:
        return self._export(data)  # type: ignore[attr-defined]

    def _translate_data(self, data: tuple[Any, int]) -> Any:
        return self.request(data)

    def _count_data(self, data: tuple[Any, int]) -> int:
        return data[1]


class HttpSender:
    """Mixin for a stock OTLP HTTP exporter: its state, size limit, metrics and client.

    Its export() encodes the batch in one request through a module function, so there is no
    hook to split it; the kit sends the requests it has split through the same client and metrics.
    """

    @property
    def shut_down(self) -> bool:
        return self._shutdown  # type: ignore[attr-defined]

    @property
    def max_request_bytes(self) -> int:
        return self._max_request_size  # type: ignore[attr-defined]

    def failed(self, items: int, error: Exception) -> None:
        """Count `items` as failed in the exporter's own metrics."""
        with self._metrics.export_operation(items) as result:  # type: ignore[attr-defined]
            result.error = error

    def send(self, data: bytes, items: int) -> bool:
        """Send one serialized request, counted in the exporter's metrics."""
        with self._metrics.export_operation(items) as result:  # type: ignore[attr-defined]
            sent = self._client.export(data)  # type: ignore[attr-defined]
            if not sent.success:
                result.error = sent.error
        return sent.success


# ---- contrib instrumentations ----------------------------------------------------------------


@functools.cache  # one class, so one instrumentor: BaseInstrumentor is a singleton per class
def httpx_instrumentor(sync_wrapper: Callable, async_wrapper: Callable) -> Any:
    """contrib's HTTPXClientInstrumentor with its per-request wrappers replaced (the kit's fast
    path); `httpx_contrib_wrappers()` gives contrib's own, for every request the fast path leaves."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    class _Instrumentor(HTTPXClientInstrumentor):
        _handle_request_wrapper = staticmethod(sync_wrapper)
        _handle_async_request_wrapper = staticmethod(async_wrapper)

    return _Instrumentor()


def httpx_contrib_wrappers() -> tuple[Callable, Callable]:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    return (
        HTTPXClientInstrumentor._handle_request_wrapper,
        HTTPXClientInstrumentor._handle_async_request_wrapper,
    )


def httpx_stable_http_mode() -> Any:
    """The value of contrib's `sem_conv_opt_in_mode` option under OTEL_SEMCONV_STABILITY_OPT_IN=http."""
    from opentelemetry.instrumentation._semconv import _StabilityMode

    return _StabilityMode.HTTP


def logging_handler() -> logging.Handler | None:
    """The OTLP handler contrib's LoggingInstrumentor put on the root logger, if any: contrib
    keeps it on the class and offers no accessor."""
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    return LoggingInstrumentor._logging_handler


def logging_handler_emitting(handler: logging.Handler) -> Any:
    """The handler's re-entry flag (a ContextVar, true while it emits), or None in releases without one."""
    return getattr(type(handler), "_is_emitting", None)


# contrib's pika helpers, reused so the kit's spans match contrib's.
def pika_enrich_span(span: Any, channel: Any, properties: Any, destination: str, operation: Any) -> None:
    from opentelemetry.instrumentation.pika import utils

    utils._enrich_span(span, channel, properties, destination, operation)


def pika_span_name(destination: str, operation: Any) -> str:
    from opentelemetry.instrumentation.pika import utils

    return utils._generate_span_name(destination, operation)


def pika_header_getter() -> Any:
    """contrib's Getter of trace context from a message's headers."""
    from opentelemetry.instrumentation.pika import utils

    return utils._pika_getter


def pika_consumer_generator_info() -> type:
    """pika's holder of a `consume()` generator, whose __init__ contrib wraps to start a span."""
    from pika.adapters.blocking_connection import _QueueConsumerGeneratorInfo

    return _QueueConsumerGeneratorInfo


def pika_blocking_impl(channel: Any) -> Any:
    """The asynchronous channel inside a BlockingChannel: contrib instruments its publish too."""
    return channel._impl


def fastapi_telemetry_config(app: Any) -> dict | None:
    """FastAPI's own telemetry settings for `app` (FastAPI 0.165 and later), or None."""
    config = getattr(app, "_telemetry", None)
    return config if isinstance(config, dict) and "operation_spans" in config else None


@functools.cache
def psycopg2_cursor_tracer() -> type:
    """contrib's psycopg2 CursorTracer with the parts the kit's tracer uses under public names.

    `populate_span` is contrib's attributes for a statement; override it to add to them.
    """
    from opentelemetry.instrumentation.psycopg2 import CursorTracer

    class CursorTracerBase(CursorTracer):
        @property
        def integration(self) -> Any:
            return self._db_api_integration

        @property
        def tracer(self) -> Any:
            return self._db_api_integration._tracer

        def record_metrics(
            self, cursor: Any, operation: str, started: float, error: Exception | None
        ) -> None:
            self._record_metrics(cursor, operation, started, error)

        def populate_span(self, span: Any, cursor: Any, *args: Any) -> None:
            super()._populate_span(span, cursor, *args)

        def _populate_span(self, span: Any, cursor: Any, *args: Any) -> None:
            self.populate_span(span, cursor, *args)

    return CursorTracerBase
