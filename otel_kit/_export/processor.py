"""The batch span processor that queues rows, and the exporters it hands batches of rows to.

`RowBatchSpanProcessor` is the stock processor queueing rows (rows.SpanCatalog) instead of
spans. Its exporter is `InProcessRowExporter` (the processor's thread encodes and sends, the
default on one core and with OTEL_KIT_EXPORT_PROCESS=false) or child.ProcessSpanExporter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_kit._compat import BatchQueue
from otel_kit._export.drops import Drops
from otel_kit._export.rows import SpanCatalog, export_batch


class RowExporter(Protocol):
    """What RowBatchSpanProcessor needs of its exporter."""

    catalog: SpanCatalog
    max_held: int  # rows it may hold back (the child's start); the processor sets its queue size

    def start(self) -> None: ...
    def export(self, rows: Sequence[tuple]) -> SpanExportResult: ...
    def force_flush(self, timeout_millis: int = 30_000) -> bool: ...
    def shutdown(self, timeout_millis: float = 30_000) -> None: ...


class InProcessRowExporter:
    """Encodes and sends each batch of rows in the service, on the batch processor's thread.

    `make` builds the OTLP exporter (encoder.row_exporter); `start` builds it at init(): built
    at the first batch under load, its imports held the batch worker up while the queue
    overflowed.
    """

    def __init__(self, make: Callable[[], SpanExporter]) -> None:
        self.catalog = SpanCatalog()
        self.max_held = 0
        self._make = make
        self._exporter: SpanExporter | None = None

    def start(self) -> None:
        if self._exporter is None:
            self._exporter = self._make()

    def export(self, rows: Sequence[tuple]) -> SpanExportResult:
        self.start()
        return export_batch(self._exporter, self.catalog.batch(rows))  # type: ignore[arg-type]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter is None or self._exporter.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        if self._exporter is not None:
            self._exporter.shutdown()


class RowBatchSpanProcessor(BatchSpanProcessor):
    """The stock batch processor (bounded queue, drop counting, schedule), queueing rows.

    Its force_flush also waits for the exporter: with the export child, the stock one returns
    once batches are handed over, which would not yet mean "sent" to whoever flushes and then
    looks for the spans (tests, short jobs, the CLI).
    """

    def __init__(self, exporter: RowExporter, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)  # type: ignore[arg-type]  # exports rows, not spans
        self._exporter = exporter
        self._export_queue = BatchQueue(self)
        exporter.max_held = self._export_queue.limit
        self._row = exporter.catalog.row
        self._drops = Drops(self._export_queue, "span export queue", "spans", "OTEL_BSP_MAX_QUEUE_SIZE")
        exporter.start()

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        queue = self._export_queue
        if queue.full():
            # Full: the collector is down or slow. The stock emit logs and counts every drop:
            # 23 us a span here, more than exporting it; this path takes 3 us.
            queue.items.appendleft(self._row(span))  # pushes out the oldest, as the stock emit does
            self._drops.add()
            return
        if self._drops.pending:
            self._drops.report()
        # The stock on_end queues the span itself; the rest of the path is the SDK's.
        queue.batch.emit(self._row(span))

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        self._drops.report()
        handed_over = super().force_flush(timeout_millis)
        return self._exporter.force_flush(timeout_millis or 30_000) and handed_over

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Export what is queued within `timeout_millis`, then stop the exporter (ending its
        retries and the child); the stock shutdown takes no timeout and waits 30 s."""
        self._drops.report(final=True)  # the drops not yet logged, whenever the last log was
        self._export_queue.batch.shutdown(timeout_millis)
