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

from otel_kit import _otlp_rows
from otel_kit._export_process import SpanCatalog, from_wire
from otel_kit._otlp_rows import RowEncoder
from tests.unit.test_export_process import _spans


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
    rows[0] = (*rows[0][:10], dict(attributes), *rows[0][11:])
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
    monkeypatch.setattr(_otlp_rows, "_MAX_CACHED", 8)
    encoder = RowEncoder()
    for order in range(20):  # unique values, as order ids are
        batch = _rows_with({"order.id": f"ord-{order}"})
        assert _ours(encoder, batch) == _stock(batch)
        assert len(encoder._attributes) <= 8
