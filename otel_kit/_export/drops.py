"""What a full export queue drops: counted, added to the SDK's counter, and said with how many.

The SDK's batch processor logs "Queue full, dropping ..." for every item it drops, with no
count and no setting to change; with the collector down that is a log record per request,
and for log records one logged from inside the logging handler that is exporting them.
"""

from __future__ import annotations

import logging
import threading
import time

from otel_kit._compat import BatchQueue

_log = logging.getLogger("otel_kit")


class Drops:
    """Items dropped on a full queue of one SDK batch processor.

    Added to its counter (otel_sdk_processor_{span,log}_processed{error_type="queue_full"})
    at most once a second, and logged at most once a minute with how many, naming the queue's
    size setting (`queue_size_variable`, e.g. OTEL_BSP_MAX_QUEUE_SIZE).
    """

    _REPORT_EVERY_S = 1.0
    _LOG_EVERY_S = 60.0

    def __init__(self, batch: BatchQueue, queue: str, items: str, queue_size_variable: str) -> None:
        self._batch = batch
        self._queue = queue  # "span export queue"
        self._items = items  # "spans"
        self._variable = queue_size_variable
        self._lock = threading.Lock()
        self.pending = 0
        self._reported_at = float("-inf")  # the first drop is reported at once
        self._logged_at = float("-inf")
        self._unlogged = 0

    def add(self) -> None:
        with self._lock:
            self.pending += 1
            if time.monotonic() - self._reported_at < self._REPORT_EVERY_S:
                return
        self.report()

    def report(self, final: bool = False) -> None:
        """Count pending drops; log them if a minute has passed since the last log, or if `final`."""
        now = time.monotonic()
        with self._lock:
            count, self.pending, self._reported_at = self.pending, 0, now
            self._unlogged += count
            log = self._unlogged and (final or now - self._logged_at >= self._LOG_EVERY_S)
            if log:
                logged, self._unlogged, self._logged_at = self._unlogged, 0, now
        if count:
            self._batch.count_dropped(count)
        if log:
            _log.warning(
                "otel_kit: %s full; %s dropped since the last such warning: %d "
                "(is the collector at OTEL_EXPORTER_OTLP_ENDPOINT up? if it is, the queue is too "
                "small for the bursts: %s=%d)",
                self._queue,
                self._items,
                logged,
                self._variable,
                self._batch.limit,
            )
