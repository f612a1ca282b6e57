"""The kit's BlockingChannel publish makes contrib's producer span, its details worked out once."""

from __future__ import annotations

import pika
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.pika import utils as pika_utils
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import otel_kit
from otel_kit.integrations import pika as pika_integration


def _contrib_publish(channel):
    """Contrib's own wrapper around the same unwrapped publish, with the kit's hook."""
    original = channel.basic_publish._original_function
    return pika_utils._decorate_basic_publish(
        original, channel, pika_integration._publish_tracer, pika_integration._on_publish
    )


def _comparable(span) -> tuple:
    return (
        span.name,
        span.kind,
        dict(span.attributes),
        span.status.status_code,
        span.status.description,
        [(event.name, dict(event.attributes)) for event in span.events if event.name != "exception"],
        [event.attributes["exception.type"] for event in span.events if event.name == "exception"],
        span.instrumentation_scope,
        span.parent.span_id if span.parent else None,
    )


@pytest.mark.parametrize(
    "properties",
    [None, pika.BasicProperties(), pika.BasicProperties(message_id="m-1", correlation_id="c-1")],
    ids=["no properties", "properties without headers", "message and correlation ids"],
)
def test_publish_span_matches_contrib_and_carries_the_trace(kit, amqp, unique, spans, properties):
    queue = f"publish-{unique}"
    with pika.BlockingConnection(amqp) as connection:
        channel = connection.channel()
        channel.queue_declare(queue)
        contrib = _contrib_publish(channel)
        with trace.get_tracer("test").start_as_current_span("place order"), otel_kit.order(f"P-{unique}"):
            for publish in (channel.basic_publish, channel.basic_publish, contrib):  # 2nd: reused details
                publish("", queue, b"{}", properties and pika.BasicProperties(**vars(properties)))
        received = []
        for method, message_properties, _body in channel.consume(queue, inactivity_timeout=10):
            assert method is not None, "a published message did not arrive"
            channel.basic_ack(method.delivery_tag)
            received.append(message_properties.headers)
            if len(received) == 3:
                break
        channel.cancel()

    first, cached, expected = [span for span in spans.all() if span.kind is SpanKind.PRODUCER]
    assert _comparable(first) == _comparable(cached) == _comparable(expected)
    assert first.attributes["order.id"] == f"P-{unique}"
    assert first.attributes["messaging.destination.name"] == queue
    for span, headers in zip((first, cached, expected), received, strict=True):
        carried = TraceContextTextMapPropagator().extract(headers)
        assert trace.get_current_span(carried).get_span_context().span_id == span.context.span_id
        assert f"order.id=P-{unique}" in headers["baggage"]


def test_a_failed_publish_is_recorded_as_contrib_records_it(kit, amqp, spans):
    with pika.BlockingConnection(amqp) as connection:
        channel = connection.channel()
        contrib = _contrib_publish(channel)
        channel.close()
        for publish in (channel.basic_publish, contrib):
            with pytest.raises(pika.exceptions.ChannelWrongStateError):
                publish("", "anywhere", b"{}")

    ours, expected = [span for span in spans.all() if span.kind is SpanKind.PRODUCER]
    assert _comparable(ours) == _comparable(expected)
    assert ours.status.status_code is StatusCode.ERROR
    assert [event.name for event in ours.events] == ["exception"]


def test_a_suppressed_publish_makes_no_span(kit, amqp, unique, spans):
    queue = f"suppressed-{unique}"
    with pika.BlockingConnection(amqp) as connection:
        channel = connection.channel()
        channel.queue_declare(queue)
        with suppress_instrumentation():
            channel.basic_publish("", queue, b"{}")
        method, _properties, _body = channel.basic_get(queue, auto_ack=True)
        assert method is not None  # published all the same

    assert [span for span in spans.all() if span.kind is SpanKind.PRODUCER] == []
