"""Export span rows (see rows.SpanCatalog) over OTLP, encoded to protobuf by hand.

The stock encoder (opentelemetry-exporter-otlp-proto-common) builds a protobuf message
object per span, attribute and value: 51 us a span with seven attributes here, most of the
cost of exporting a span, in the service or in the export process alike. Writing the
OTLP wire format straight from a row, with each attribute's encoding kept while its value
repeats, takes a fraction of that; no OpenTelemetry package encodes faster, hence this
module. The bytes are parsed back into the stock ExportTraceServiceRequest (in C) and sent
by the stock exporters, so retries, headers, compression and TLS stay theirs. Tests hold
the result equal to the stock encoder's for every field and value type. A batch is sent in
requests a receiver takes (`requests_within`, see split).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace.export import SpanExportResult

from otel_kit._compat import GrpcSender, HttpSender
from otel_kit._export.rows import NAME, RESOURCE, SCOPE, Batch, EventRow, LinkRow, SpanRow
from otel_kit._export.split import MAX_REQUEST_BYTES, cut_strings, fit, outcome, send_over_http

_log = logging.getLogger("otel_kit")

_SUCCESS, _FAILURE = SpanExportResult.SUCCESS, SpanExportResult.FAILURE


# Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. A tag is (field << 3) | type.
_SMALL = [bytes((n,)) for n in range(128)]
_pack_double = struct.Struct("<d").pack
_pack_u64 = struct.Struct("<Q").pack
_pack_times = struct.Struct("<BQBQ").pack  # Span 7 and 8: start and end, fixed64
_SPAN_FLAGS = {False: b"\x85\x01" + struct.pack("<I", 0x100), True: b"\x85\x01" + struct.pack("<I", 0x300)}
_LINK_FLAGS = {False: b"\x35" + struct.pack("<I", 0x100), True: b"\x35" + struct.pack("<I", 0x300)}
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_MAX_CACHED = 4096  # KeyValues kept, then the cache starts over
# Longer KeyValues are not kept: the values that repeat are short (method, route, table,
# peer), and 4,096 unique 100 KB stack traces or statements kept 900 MiB here.
_MAX_CACHED_BYTES = 1024


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """An AnyValue message; the same cases, in the same order, as the stock encoder."""
    if value is None:
        return b""
    if value is True:
        return b"\x10\x01"
    if value is False:
        return b"\x10\x00"
    if isinstance(value, str):
        return _delimited(b"\x0a", value.encode())
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{value} does not fit in int64")
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _delimited(b"\x3a", value)
    if isinstance(value, Sequence):
        return _delimited(b"\x2a", b"".join(_delimited(b"\x0a", _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _delimited(
            b"\x32", b"".join(_delimited(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        )
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _key_value(key: str, value: Any) -> bytes:
    encoded = key.encode()
    return (_delimited(b"\x0a", encoded) if encoded else b"") + _delimited(b"\x12", _any_value(value))


class RowEncoder:
    """Turns a batch of span rows into one serialized ExportTraceServiceRequest."""

    def __init__(self) -> None:
        # A KeyValue's length prefix and bytes, by key and value: most values repeat (method,
        # route, table, peer); unique ones (order ids, ports) fill it and it starts over.
        self._attributes: dict[tuple, bytes] = {}

    def encode(self, resources: list, scopes: list, rows: list) -> bytes:
        # Grouped as the stock encoder groups: by resource, then scope, in order of appearance.
        grouped: dict[int, dict[int, list[bytes]]] = {}
        for row in rows:
            by_scope = grouped.get(row[RESOURCE])
            if by_scope is None:
                by_scope = grouped[row[RESOURCE]] = {}
            spans = by_scope.get(row[SCOPE])
            if spans is None:
                spans = by_scope[row[SCOPE]] = []
            spans.append(_delimited(b"\x12", self._span(row)))  # ScopeSpans.spans
        out = []
        for r, by_scope in grouped.items():
            attributes, resource_schema = resources[r]
            parts = [_delimited(b"\x0a", self._attributes_of(b"\x0a", attributes))]  # Resource
            for s, spans in by_scope.items():
                scope = scopes[s]
                scope_spans = [_delimited(b"\x0a", self._scope(scope)), *spans]
                if scope is not None and scope[2]:
                    scope_spans.append(_delimited(b"\x1a", scope[2].encode()))  # schema_url
                parts.append(_delimited(b"\x12", b"".join(scope_spans)))  # ResourceSpans.scope_spans
            if resource_schema:
                parts.append(_delimited(b"\x1a", resource_schema.encode()))
            out.append(_delimited(b"\x0a", b"".join(parts)))  # ExportTraceServiceRequest.resource_spans
        return b"".join(out)

    def _scope(self, scope: tuple | None) -> bytes:
        if scope is None:
            return b""
        name, version, _schema_url, attributes = scope
        parts = []
        if name:
            parts.append(_delimited(b"\x0a", name.encode()))
        if version:
            parts.append(_delimited(b"\x12", version.encode()))
        parts.append(self._attributes_of(b"\x1a", attributes))
        return b"".join(parts)

    def _span(self, row: tuple) -> bytes:  # unpacked in SpanRow's order: faster than by name
        (name, trace_id, span_id, _flags, state, parent_id, parent_remote, kind, start, end, attributes,
         dropped_attributes, status_code, status_description, events, dropped_events, links,
         dropped_links, _r, _s) = row  # fmt: skip
        parts = [b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", span_id.to_bytes(8, "big")]
        if state:
            parts.append(_delimited(b"\x1a", ",".join(f"{k}={v}" for k, v in state).encode()))
        if parent_id is not None:
            parts += (b"\x22\x08", parent_id.to_bytes(8, "big"))
        if name:
            parts.append(_delimited(b"\x2a", name.encode()))
        parts += (b"\x30", _SMALL[kind + 1], _pack_times(0x39, start, 0x41, end))  # OTLP kinds count from 1
        if attributes:
            parts.append(self._attributes_of(b"\x4a", attributes))
        if dropped_attributes:
            parts += (b"\x50", _varint(dropped_attributes))
        for event_name, timestamp, event_attributes, event_dropped in events:
            event = [b"\x09", _pack_u64(timestamp)]
            if event_name:
                event.append(_delimited(b"\x12", event_name.encode()))
            event.append(self._attributes_of(b"\x1a", event_attributes))
            if event_dropped:
                event += (b"\x20", _varint(event_dropped))
            parts.append(_delimited(b"\x5a", b"".join(event)))
        if dropped_events:
            parts += (b"\x60", _varint(dropped_events))
        for link_trace_id, link_span_id, _link_flags, remote, link_attributes, link_dropped in links:
            link = [
                b"\x0a\x10",
                link_trace_id.to_bytes(16, "big"),
                b"\x12\x08",
                link_span_id.to_bytes(8, "big"),
                self._attributes_of(b"\x22", link_attributes),
            ]
            if link_dropped:
                link += (b"\x28", _varint(link_dropped))
            link.append(_LINK_FLAGS[bool(remote)])
            parts.append(_delimited(b"\x6a", b"".join(link)))
        if dropped_links:
            parts += (b"\x70", _varint(dropped_links))
        status = b""
        if status_description:
            status = _delimited(b"\x12", status_description.encode())
        if status_code:
            status += b"\x18" + _SMALL[status_code]
        parts += (b"\x7a", _varint(len(status)), status, _SPAN_FLAGS[bool(parent_remote)])
        return b"".join(parts)

    def _attributes_of(self, tag: bytes, attributes: dict) -> bytes:
        """Each attribute as a KeyValue in field `tag`; one that cannot be encoded is left out, as
        the stock encoder does."""
        cache = self._attributes
        parts = []
        for key, value in attributes.items():
            cache_key = (key, value.__class__, value)
            try:
                encoded = cache.get(cache_key)
            except TypeError:  # an unhashable value: encode it every time
                cache_key, encoded = None, None
            if encoded is None:
                try:
                    key_value = _key_value(key, value)
                except Exception as error:  # the stock encoder logs and skips it too
                    _log.exception("Failed to encode key %s: %s", key, error)
                    continue
                encoded = _varint(len(key_value)) + key_value
                if cache_key is not None and len(encoded) <= _MAX_CACHED_BYTES:
                    if len(cache) >= _MAX_CACHED:
                        cache.clear()
                    cache[cache_key] = encoded
            parts += (tag, encoded)
        return b"".join(parts)


def requests_within(
    encoder: RowEncoder, batch: Batch, limit: int = MAX_REQUEST_BYTES
) -> list[tuple[bytes, int]]:
    """The batch as serialized requests a receiver takes (see split), each with its number of spans."""
    resources, scopes, rows = batch
    return fit(rows, lambda part: encoder.encode(resources, scopes, part), len, _shrunk, _span_name, limit)


def _shrunk(row: tuple, cap: int) -> tuple:
    """The row with every string longer than `cap` cut to `cap`: name, attributes (of the
    span, its events and links), status description."""
    span = SpanRow._make(row)
    events = [EventRow._make(event) for event in span.events]
    links = [LinkRow._make(link) for link in span.links]
    return span._replace(
        name=cut_strings(span.name, cap),
        attributes=cut_strings(span.attributes, cap),
        status_description=cut_strings(span.status_description, cap),
        events=tuple(
            e._replace(name=cut_strings(e.name, cap), attributes=cut_strings(e.attributes, cap))
            for e in events
        ),
        links=tuple(link._replace(attributes=cut_strings(link.attributes, cap)) for link in links),
    )


def _span_name(row: tuple) -> str:
    return f"span ({row[NAME][:100]!r})"


def row_exporter(protocol: str, **kwargs: Any) -> Any:
    """The stock OTLP span exporter for `protocol`, taught to export a SpanCatalog batch
    (`export_rows`); `kwargs` go to its constructor."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        class _GrpcRows(GrpcSender, Grpc):
            _encoder = RowEncoder()

            def request(self, data: tuple[bytes, int]) -> Any:
                return ExportTraceServiceRequest.FromString(data[0])

            def export_rows(self, batch: Batch) -> SpanExportResult:
                requests = requests_within(self._encoder, batch)
                results = [self.send(request) for request in requests]
                return outcome(results, requests, len(batch[2]), _SUCCESS, _FAILURE)

        return _GrpcRows(**kwargs)

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    class _HttpRows(HttpSender, Http):
        _encoder = RowEncoder()

        def export_rows(self, batch: Batch) -> SpanExportResult:
            # The stock export() with our encoding: it calls the module's encode_spans itself,
            # so there is no hook to override.
            if self.shut_down:
                _log.warning("Exporter already shutdown, ignoring batch")
                return SpanExportResult.FAILURE
            try:
                limit = min(MAX_REQUEST_BYTES, self.max_request_bytes)
                requests = requests_within(self._encoder, batch, limit)
            except Exception as error:
                _log.error("Failed to encode span batch: %s", error)
                self.failed(len(batch[2]), error)
                return SpanExportResult.FAILURE
            results = send_over_http(self, requests, _SUCCESS, _FAILURE)
            return outcome(results, requests, len(batch[2]), _SUCCESS, _FAILURE)

    return _HttpRows(**kwargs)
