"""What arrives from upstream: context read whatever the carrier holds, a bad order.id dropped."""

import logging

import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.instrumentation.pika.utils import _pika_getter

import otel_kit
from otel_kit._export.sdk_warnings import _OncePerInterval

tracer = trace.get_tracer("test")
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest.mark.parametrize("bad", ["%3Cscript%3E", "a" * 129, "has%20space", "-leading"])
def test_bad_id_received_in_baggage_is_dropped_and_the_rest_kept(spans, bad):
    ctx = propagate.extract({"baggage": f"order.id={bad},tenant=t1"})
    assert baggage.get_baggage("order.id", ctx) is None
    assert baggage.get_baggage("tenant", ctx) == "t1"
    token = context.attach(ctx)
    try:
        with tracer.start_as_current_span("s"):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)  # nor is it sent on to the next hop
    finally:
        context.detach(token)
    assert "order.id" not in spans.named("s").attributes
    assert carrier["baggage"] == "tenant=t1"


def test_good_id_received_in_baggage_tags_spans(spans):
    token = context.attach(propagate.extract({"baggage": "order.id=ord-1:a_b.c"}))
    try:
        with tracer.start_as_current_span("s"):
            assert otel_kit.current_order_id() == "ord-1:a_b.c"
    finally:
        context.detach(token)
    assert spans.named("s").attributes["order.id"] == "ord-1:a_b.c"


def test_bad_ids_received_are_warned_about_once_a_minute(kit, caplog, monkeypatch):
    logger = logging.getLogger("otel_kit.incoming")
    assert any(isinstance(f, _OncePerInterval) for f in logger.filters)  # set up by init()
    monkeypatch.setattr(logger, "filters", [_OncePerInterval(interval=60)])  # none held from other tests
    with caplog.at_level(logging.WARNING, "otel_kit.incoming"):
        for n in range(100):
            propagate.extract({"baggage": f"order.id=bad%20id-{n}"})
    (record,) = [r for r in caplog.records if r.name == "otel_kit.incoming"]
    assert "'bad id-0' received in baggage dropped" in record.getMessage()


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": 5},
        {"traceparent": b"\xff\xfe"},
        {"traceparent": ["a", 1]},
        {"tracestate": 3, "baggage": 7},
        {"baggage": {"order.id": "X-1"}},
        {"baggage": b"order.id=\xff"},
    ],
)
def test_context_headers_that_are_not_strings_are_ignored(kit, headers):
    ctx = propagate.extract(headers, getter=_pika_getter)  # as a RabbitMQ consumer reads them
    assert not trace.get_current_span(ctx).get_span_context().is_valid
    assert baggage.get_all(ctx) == {}


def test_context_headers_sent_as_bytes_are_read(kit):
    headers = {
        "traceparent": TRACEPARENT.encode(),
        "tracestate": bytearray(b"k=v"),
        "baggage": b"order.id=B-1",
    }
    ctx = propagate.extract(headers, getter=_pika_getter)
    span_context = trace.get_current_span(ctx).get_span_context()
    assert format(span_context.trace_id, "032x") == TRACE_ID
    assert span_context.trace_state == {"k": "v"}
    assert baggage.get_baggage("order.id", ctx) == "B-1"


def test_a_carrier_that_cannot_be_read_starts_a_new_trace_with_a_warning(kit, caplog, monkeypatch):
    logger = logging.getLogger("otel_kit.incoming")
    monkeypatch.setattr(logger, "filters", [_OncePerInterval(interval=60)])  # none held from other tests
    with caplog.at_level(logging.WARNING, "otel_kit.incoming"):
        ctx = propagate.extract(object())  # the default getter calls carrier.get()
    assert not trace.get_current_span(ctx).get_span_context().is_valid
    assert "trace context not read (AttributeError" in caplog.text
