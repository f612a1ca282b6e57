"""OTLP batches sent in requests a receiver takes.

A receiver refuses a request over its limit whole: gRPC servers take 4 MiB by default (the
collector's OTLP receiver and Jaeger among them), the collector's HTTP receiver 20 MiB. The
stock exporters send a batch as one request, so one span with a 5 MB statement, or an error
storm of 512 spans or log records with 8 KB stack traces, cost the whole batch, and the gRPC
exporter retried it until its timeout. No exporter option splits a batch (upstream:
open-telemetry/opentelemetry-specification#2772), hence `fit`; the span exporters use it
in encoder, the log exporters are here (`log_exporter`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry.sdk.util.instrumentation import BoundedAttributes

from otel_kit._compat import GrpcSender, HttpSender

if TYPE_CHECKING:  # the span export process imports this module and sends no logs
    from otel_kit._compat import LogRecordExportResult, ReadableLogRecord

Item = TypeVar("Item")
Request = TypeVar("Request")

# One limit for both protocols, the lowest default of the common receivers.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
_MIN_CUT = 64  # characters: cut shorter, an item says nothing, so it is dropped instead

_log = logging.getLogger("otel_kit.export")  # rate-limited (sdk_warnings): it may warn per item


def fit(
    items: Sequence[Item],
    encode: Callable[[Sequence[Item]], Request],
    size: Callable[[Request], int],
    shrunk: Callable[[Item, int], Item],
    what: Callable[[Item], str],
    limit: int = MAX_REQUEST_BYTES,
) -> list[tuple[Request, int]]:
    """`items` as encoded requests of at most `limit` bytes, each with its number of items.

    A batch under the limit (nearly all) costs one `size`; one over it is halved until each
    part fits. An item too big alone goes with its strings cut to fit (`shrunk(item, cap)`);
    one that cannot be cut to fit is dropped. `what(item)` names it in the warning.
    """
    request = encode(items)
    measured = size(request)
    if measured <= limit:
        return [(request, len(items))]
    if len(items) > 1:
        half = len(items) // 2
        return fit(items[:half], encode, size, shrunk, what, limit) + fit(
            items[half:], encode, size, shrunk, what, limit
        )
    cap = limit // 2
    while cap >= _MIN_CUT:
        cut = encode([shrunk(items[0], cap)])
        if size(cut) <= limit:
            _log.warning(
                "A %s of %d bytes is over the %d bytes an OTLP request may hold: sent with its"
                " strings cut to %d characters. OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT cuts them where"
                " they are made.",
                what(items[0]), measured, limit, cap,
            )  # fmt: skip
            return [(cut, 1)]
        cap //= 4
    _log.warning(
        "A %s of %d bytes is over the %d bytes an OTLP request may hold, even with its strings"
        " cut: dropped. Too many attributes, events or links?",
        what(items[0]), measured, limit,
    )  # fmt: skip
    return []


def cut_strings(value: Any, cap: int) -> Any:
    """`value` with every string, also in sequences and mappings, cut to `cap` characters."""
    if isinstance(value, str | bytes):
        return value[:cap]
    if isinstance(value, list | tuple):
        return type(value)(cut_strings(item, cap) for item in value)
    if isinstance(value, Mapping):
        return {key: cut_strings(item, cap) for key, item in value.items()}
    return value


def outcome(
    results: list[Any], requests: list[tuple[Any, int]], items: int, success: Any, failure: Any
) -> Any:
    """`success` if every request succeeded and none of the `items` was dropped."""
    every_item_sent = sum(count for _, count in requests) == items
    return success if every_item_sent and all(result == success for result in results) else failure


def send_over_http(
    exporter: HttpSender, requests: list[tuple[bytes, int]], success: Any, failure: Any
) -> list[Any]:
    """Send serialized requests with a stock http/protobuf exporter's client, counted in its metrics."""
    return [success if exporter.send(data, count) else failure for data, count in requests]


def log_exporter(protocol: str, **kwargs: Any) -> Any:
    """The stock OTLP log exporter for `protocol`, sending each batch in requests that `fit`."""
    from otel_kit._compat import LogRecordExportResult

    success, failure = LogRecordExportResult.SUCCESS, LogRecordExportResult.FAILURE
    if protocol == "grpc":
        from otel_kit._compat import GrpcLogExporter

        class _GrpcLogs(GrpcSender, GrpcLogExporter):
            def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
                requests = _log_requests(batch)
                results = [self.send(request) for request in requests]
                return outcome(results, requests, len(batch), success, failure)

        return _GrpcLogs(**kwargs)

    from otel_kit._compat import HttpLogExporter

    class _HttpLogs(HttpSender, HttpLogExporter):
        def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
            # The stock export() with the batch split.
            if self.shut_down:
                _log.warning("Exporter already shutdown, ignoring batch")
                return failure
            try:
                fitted = _log_requests(batch, min(MAX_REQUEST_BYTES, self.max_request_bytes))
                requests = [(request.SerializeToString(), count) for request, count in fitted]
            except Exception as error:
                _log.error("Failed to encode logs batch: %s", error)
                self.failed(len(batch), error)
                return failure
            results = send_over_http(self, requests, success, failure)
            return outcome(results, requests, len(batch), success, failure)

    return _HttpLogs(**kwargs)


def _log_requests(
    batch: Sequence[ReadableLogRecord], limit: int = MAX_REQUEST_BYTES
) -> list[tuple[Any, int]]:
    from otel_kit._compat import encode_logs

    return fit(list(batch), encode_logs, lambda request: request.ByteSize(), _shrunk_log, _log_name, limit)


def _shrunk_log(record: ReadableLogRecord, cap: int) -> ReadableLogRecord:
    log_record = copy.copy(record.log_record)
    log_record.body = cut_strings(log_record.body, cap)
    attributes = cut_strings(dict(log_record.attributes or {}), cap)
    if record.dropped_attributes:
        attributes = BoundedAttributes(maxlen=None, attributes=attributes, immutable=False)
        attributes.dropped = record.dropped_attributes
    log_record.attributes = attributes
    return dataclasses.replace(record, log_record=log_record)


def _log_name(record: ReadableLogRecord) -> str:
    return f"log record ({str(record.log_record.body)[:100]!r})"
