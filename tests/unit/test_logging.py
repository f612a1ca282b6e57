"""stdlib logging: every record carries the ids of the span it was written in."""

import logging

from opentelemetry import trace


def test_records_carry_trace_and_span_ids(spans, caplog):
    with caplog.at_level(logging.INFO), trace.get_tracer("t").start_as_current_span("work") as span:
        logging.getLogger("shop").info("order placed")
    (record,) = [r for r in caplog.records if r.getMessage() == "order placed"]
    assert record.otelTraceID == format(span.get_span_context().trace_id, "032x")
    assert record.otelSpanID == format(span.get_span_context().span_id, "016x")
    assert record.otelServiceName == "unit"


def test_records_outside_a_span_have_zero_ids(kit, caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("shop").info("idle")
    (record,) = [r for r in caplog.records if r.getMessage() == "idle"]
    assert record.otelTraceID == "0"
