"""A message's context headers come from any publisher: whatever they hold, every consumer gets it."""

from __future__ import annotations

import pika
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind

import otel_kit

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
HEADERS = {
    # Not strings (an int, bytes that are not UTF-8): the API's propagators raised on these.
    "malformed": {"traceparent": 5, "tracestate": 3, "baggage": b"\xff\xfeorder.id=M-1"},
    # As a publisher that writes strings as AMQP byte arrays sends them: read as bytes.
    "bytes": {"traceparent": TRACEPARENT.encode(), "baggage": b"order.id=B-1"},
}


@pytest.mark.parametrize("kind", HEADERS)
def test_every_consumer_kind_gets_the_message_whatever_its_context_headers(kit, amqp, unique, spans, kind):
    queue = f"headers-{unique}"
    handled = []
    with pika.BlockingConnection(amqp) as connection:
        channel = connection.channel()
        channel.queue_declare(queue)
        with suppress_instrumentation():  # the kit's publish would write good headers over these
            for _ in range(3):
                channel.basic_publish("", queue, b"{}", pika.BasicProperties(headers=HEADERS[kind]))

        def on_message(ch, method, properties, body):
            handled.append(("callback", otel_kit.current_order_id()))
            ch.basic_ack(method.delivery_tag)
            ch.stop_consuming()

        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(queue, on_message)
        channel.start_consuming()

        for method, _properties, _body in channel.consume(queue, inactivity_timeout=10):
            assert method is not None, "no message left for consume()"
            handled.append(("consume", otel_kit.current_order_id()))
            channel.basic_ack(method.delivery_tag)
            break
        channel.cancel()

        method, properties, _body = channel.basic_get(queue, auto_ack=True)
        assert method is not None, "no message left for basic_get"
        with otel_kit.message_context(properties):
            handled.append(("basic_get", otel_kit.current_order_id()))

    order_id = "B-1" if kind == "bytes" else None
    assert handled == [("callback", order_id), ("consume", order_id), ("basic_get", order_id)]
    consumers = [span for span in spans.all() if span.kind is SpanKind.CONSUMER]
    assert sorted(span.name for span in consumers) == sorted([f"{queue} receive"] * 3 + ["process"])
    for span in consumers:
        if kind == "bytes":  # joined to the publisher's trace, tagged with its order
            assert format(span.context.trace_id, "032x") == TRACE_ID
            assert span.attributes["order.id"] == "B-1"
        else:  # a trace of its own
            assert span.parent is None
            assert "order.id" not in span.attributes
