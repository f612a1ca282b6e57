"""Dead letters stay in their order's trace, with RabbitMQ's x-death reason, queue and count."""

from __future__ import annotations

import pika
import pytest
from opentelemetry import trace

import otel_kit


def _declare_with_dead_letters(channel, work: str, dlx: str, dlq: str, **arguments) -> None:
    channel.exchange_declare(dlx, "fanout")
    channel.queue_declare(dlq)
    channel.queue_bind(dlq, dlx)
    channel.queue_declare(work, arguments={"x-dead-letter-exchange": dlx, **arguments})


@pytest.mark.parametrize("fate", ["rejected", "expired"])
def test_dead_lettered_message_is_consumed_in_the_same_trace(kit, amqp, unique, spans, fate):
    work, dlx, dlq = f"work-{unique}", f"dlx-{unique}", f"dlq-{unique}"
    with pika.BlockingConnection(amqp) as connection:
        channel = connection.channel()
        _declare_with_dead_letters(
            channel, work, dlx, dlq, **({"x-message-ttl": 1} if fate == "expired" else {})
        )
        with trace.get_tracer("test").start_as_current_span("place order"), otel_kit.order(f"DL-{unique}"):
            channel.basic_publish("", work, b"{}")

        if fate == "rejected":
            for method, _properties, _body in channel.consume(work, inactivity_timeout=10):
                assert method is not None
                channel.basic_reject(method.delivery_tag, requeue=False)
                break
            channel.cancel()

        for method, _properties, _body in channel.consume(dlq, inactivity_timeout=10):
            assert method is not None, "nothing arrived in the dead-letter queue"
            channel.basic_ack(method.delivery_tag)
            break
        channel.cancel()

    finished = spans.all()
    assert len({span.context.trace_id for span in finished}) == 1
    dead = next(span for span in finished if span.name == f"{dlx} receive")
    assert dead.attributes["order.id"] == f"DL-{unique}"
    assert dead.attributes["messaging.rabbitmq.dead_letter.reason"] == fate
    assert dead.attributes["messaging.rabbitmq.dead_letter.queue"] == work
    assert dead.attributes["messaging.rabbitmq.dead_letter.count"] == 1
    publish = next(span for span in finished if span.name == f"{work} send")
    assert dead.parent.span_id == publish.context.span_id
