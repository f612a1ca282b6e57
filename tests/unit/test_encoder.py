"""The kit's OTLP encoder of span rows gives the stock encoder's message, field for field."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_kit._export import encoder as encoder_module
from otel_kit._export.encoder import RowEncoder
from otel_kit._export.rows import EventRow, SpanCatalog, SpanRow, from_wire
from tests.unit.test_export_child import _spans


def _stock(batch: tuple[list, list, list]) -> ExportTraceServiceRequest:
    return encode_spans(from_wire(*batch))


def _ours(encoder: RowEncoder, batch: tuple[list, list, list]) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(encoder.encode(*batch))


# Every value type the stock encoder knows, with the edges of each: zero and empty values
# (a oneof set to its default is still sent), int64's limits, nested sequences and mappings.
VALUES = {
    "str": "POST /orders",
    "str.empty": "",
    "str.unicode": "заказ №7 ✓",
    "bool.true": True,
    "bool.false": False,
    "int.zero": 0,
    "int.negative": -42,
    "int.min": -(2**63),
    "int.max": 2**63 - 1,
    "int.varint": 300,
    "float": 1.5,
    "float.zero": 0.0,
    "float.negative": -2.25e-300,
    "bytes": b"\x00\xff",
    "none": None,
    "seq.str": ("a", "b"),
    "seq.int": (1, -1, 2**40),
    "seq.empty": (),
    "seq.mixed": [True, 2.5, None, "x"],
    "map": {"k": "v", "n": 1, "inner": {"deep": [1, 2]}},
    "long": "x" * 300,  # a length prefix of two bytes
}


def _rows_with(attributes: dict) -> tuple[list, list, list]:
    """A batch of two spans of two scopes and one resource; attributes set on the row as given,
    since the SDK would clean some of these values away before an exporter ever sees them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "shop", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.get_tracer("a").start_span("one", kind=SpanKind.PRODUCER).end()
    provider.get_tracer("b", "2").start_span("two", kind=SpanKind.CONSUMER).end()
    catalog = SpanCatalog()
    rows = [catalog.row(span) for span in memory.get_finished_spans()]
    rows[0] = SpanRow._make(rows[0])._replace(attributes=dict(attributes))
    return catalog.batch(rows)


def test_every_span_field_encodes_as_the_stock_encoder_does():
    """Remote parent, trace state, links (remote and local), events, error status, dropped
    counts, scope version, schema URLs and attributes, two scopes: the fixture of the wire test."""
    catalog = SpanCatalog()
    batch = catalog.batch([catalog.row(span) for span in _spans()])

    assert _ours(RowEncoder(), batch) == _stock(batch)


@pytest.mark.parametrize("name", VALUES)
def test_each_attribute_value_type_encodes_as_the_stock_encoder_does(name):
    batch = _rows_with({name: VALUES[name]})

    assert _ours(RowEncoder(), batch) == _stock(batch)


def test_encoding_again_from_the_attribute_cache_gives_the_same_message():
    batch = _rows_with(VALUES)
    encoder = RowEncoder()

    first = encoder.encode(*batch)
    assert encoder._attributes  # the second encode reads them from the cache
    assert encoder.encode(*batch) == first
    assert ExportTraceServiceRequest.FromString(first) == _stock(batch)


def test_true_and_one_do_not_share_a_cache_entry():
    encoder = RowEncoder()
    batches = [_rows_with({"flag": value}) for value in (True, 1, 1.0)]

    for batch in batches:
        assert _ours(encoder, batch) == _stock(batch)


def test_a_value_that_cannot_be_encoded_is_left_out_as_by_the_stock_encoder(caplog):
    batch = _rows_with({"ok": 1, "too.big": 2**64, "odd": object()})

    with caplog.at_level(logging.ERROR):
        ours = _ours(RowEncoder(), batch)

    assert ours == _stock(batch)
    assert [kv.key for kv in ours.resource_spans[0].scope_spans[0].spans[0].attributes] == ["ok"]
    assert "too.big" in caplog.text
    assert "odd" in caplog.text


def test_the_attribute_cache_starts_over_when_full(monkeypatch):
    monkeypatch.setattr(encoder_module, "_MAX_CACHED", 8)
    encoder = RowEncoder()
    for order in range(20):  # unique values, as order ids are
        batch = _rows_with({"order.id": f"ord-{order}"})
        assert _ours(encoder, batch) == _stock(batch)
        assert len(encoder._attributes) <= 8


def test_long_values_are_not_kept_in_the_attribute_cache():
    """Unique long values (stack traces, statements) would fill it: 4,096 of 100 KB kept 900 MiB."""
    encoder = RowEncoder()
    batch = _rows_with({"exception.stacktrace": "x" * 2000, "http.route": "/orders"})

    assert _ours(encoder, batch) == _stock(batch)
    kept = {key for key, _type, _value in encoder._attributes}
    assert "http.route" in kept
    assert "exception.stacktrace" not in kept


def _storm(spans: int, size: int) -> tuple[list, list, list]:
    """`spans` spans each with a unique `size`-character error message, as in an error storm."""
    _resources, _scopes, rows = _rows_with({})
    template = rows[0]
    unique = ({"error.message": f"{i}:" + "e" * size} for i in range(spans))
    rows = [
        SpanRow._make(template)._replace(span_id=i + 1, attributes=attributes)
        for i, attributes in enumerate(unique)
    ]
    return _resources, _scopes, rows


def _sent_spans(requests: list[tuple[bytes, int]]) -> list:
    spans = []
    for data, count in requests:
        message = ExportTraceServiceRequest.FromString(data)
        found = [span for rs in message.resource_spans for ss in rs.scope_spans for span in ss.spans]
        assert len(found) == count
        spans += found
    return spans


def test_a_batch_over_the_request_limit_is_sent_in_requests_under_it_with_every_span():
    batch = _storm(40, 1000)
    limit = 10_000

    requests = encoder_module.requests_within(RowEncoder(), batch, limit)

    assert len(requests) > 1
    assert all(len(data) <= limit for data, _count in requests)
    stock = _stock(batch).resource_spans[0].scope_spans[0].spans
    assert _sent_spans(requests) == list(stock)  # every span, in order, unchanged


def test_a_batch_under_the_request_limit_is_one_request():
    batch = _storm(40, 10)

    [(data, count)] = encoder_module.requests_within(RowEncoder(), batch, 10_000)

    assert (ExportTraceServiceRequest.FromString(data), count) == (_stock(batch), 40)


def test_a_span_too_big_alone_is_sent_with_its_long_strings_cut(export_warnings):
    _resources, _scopes, rows = _storm(3, 10)
    big = rows[1]
    events = (EventRow("exception", 5, {"exception.stacktrace": "s" * 9000, "n": 1}, 0),)
    attributes = {**SpanRow._make(big).attributes, "db.statement": "q" * 9000, "tags": ("t" * 9000, "u")}
    rows[1] = SpanRow._make(big)._replace(attributes=attributes, events=events)
    limit = 8_000

    requests = encoder_module.requests_within(RowEncoder(), (_resources, _scopes, rows), limit)

    assert all(len(data) <= limit for data, _count in requests)
    sent = _sent_spans(requests)
    assert [span.span_id for span in sent] == [SpanRow._make(row).span_id.to_bytes(8, "big") for row in rows]
    attributes = {kv.key: kv.value for kv in sent[1].attributes}
    cut = len(attributes["db.statement"].string_value)
    assert 0 < cut < 9000
    assert attributes["db.statement"].string_value == "q" * cut
    assert [v.string_value for v in attributes["tags"].array_value.values] == ["t" * cut, "u"]
    [event] = sent[1].events
    assert {kv.key: kv.value for kv in event.attributes}["exception.stacktrace"].string_value == "s" * cut
    assert (
        sent[0].attributes
        == _stock((_resources, _scopes, rows[:1])).resource_spans[0].scope_spans[0].spans[0].attributes
    )
    assert f"strings cut to {cut} characters" in export_warnings.text
    assert "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT" in export_warnings.text


def test_a_span_that_cannot_be_cut_to_fit_is_dropped_with_a_warning(export_warnings):
    _resources, _scopes, rows = _storm(2, 10)
    rows[0] = SpanRow._make(rows[0])._replace(attributes={f"a{i}": i for i in range(2000)})  # many, all short

    requests = encoder_module.requests_within(RowEncoder(), (_resources, _scopes, rows), 4_000)

    assert [span.span_id for span in _sent_spans(requests)] == [rows[1][2].to_bytes(8, "big")]
    assert "even with its strings cut: dropped" in export_warnings.text
