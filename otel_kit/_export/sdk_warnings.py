"""Rate-limit per-item warnings: a dead collector or a peer sending bad headers must not flood logs.

The batch processor logs "Queue full, dropping spans." for every dropped span; on a busy
service that is thousands of log records a second, each formatted, written and exported
(measured: throughput fell to 0.75x of collector-up). The drops stay counted as metrics
(otel_sdk_processor_span_processed{error_type="queue_full"}); the log says it once a minute.
"""

from __future__ import annotations

import logging
import threading
import time

from otel_kit._compat import BATCH_PROCESSOR_LOGGER, HTTP_LOG_EXPORTER_LOGGER

_NOISY_LOGGERS = (
    BATCH_PROCESSOR_LOGGER,  # "Queue full, dropping spans/logs."
    "opentelemetry.exporter.otlp.proto.grpc.exporter",  # "Transient error ... retrying"
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    HTTP_LOG_EXPORTER_LOGGER,
    # A malformed traceparent, tracestate or baggage header, or a bad order id in baggage, is
    # warned about per request (the API quotes a whole 8 KiB baggage header each time).
    "opentelemetry.trace.propagation.tracecontext",
    "opentelemetry.trace.span",  # tracestate parsing
    "opentelemetry.baggage.propagation",
    "otel_kit.incoming",
    "otel_kit.export",  # a span or log record too big for one OTLP request
)


class _OncePerInterval(logging.Filter):
    """Let a message template through once per interval, noting how many were held back."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[object, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        with self._lock:
            last, held = self._last.get(record.msg, (float("-inf"), 0))
            if now - last < self._interval:
                self._last[record.msg] = (last, held + 1)
                return False
            self._last[record.msg] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self._interval:.0f} s)"
        return True


def quiet_sdk_warnings(interval: float = 60.0) -> None:
    limiter = _OncePerInterval(interval)
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OncePerInterval) for f in logger.filters):
            logger.addFilter(limiter)
