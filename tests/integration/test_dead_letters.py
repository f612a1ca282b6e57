"""Dead letters stay in their order's trace, with RabbitMQ's x-death reason, queue and count."""

from __future__ import annotations

import pika
import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

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


# How the consumer settles the message, and the consumer span's status description after.
SETTLEMENTS = {
    "reject": (lambda ch, tag: ch.basic_reject(tag, requeue=False), "message rejected, not requeued"),
    "nack, requeued": (lambda ch, tag: ch.basic_nack(tag, requeue=True), "message rejected, requeued"),
    "nack, positional": (lambda ch, tag: ch.basic_nack(tag, False, False), "message rejected, not requeued"),
    "ack": (lambda ch, tag: ch.basic_ack(tag), None),
}


@pytest.mark.parametrize("consumer", ["callback", "consume", "basic_get"])
@pytest.mark.parametrize("settlement", SETTLEMENTS)
def test_a_rejected_message_marks_its_consumer_span_failed(kit, amqp, unique, spans, consumer, settlement):
    settle, description = SETTLEMENTS[settlement]
    queue = f"settle-{unique}"
    with pika.BlockingConnection(amqp) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, auto_delete=True)
        channel.basic_publish("", queue, b"{}")
        if consumer == "callback":

            def on_message(ch, method, _properties, _body):
                settle(ch, method.delivery_tag)
                ch.stop_consuming()

            channel.basic_consume(queue, on_message)
            channel.start_consuming()
            # A requeued message may come back before the consumer is cancelled: the first one.
            processed = min(
                (span for span in spans.all() if span.name == f"{queue} receive"), key=lambda s: s.start_time
            )
        elif consumer == "consume":
            for method, _properties, _body in channel.consume(queue, inactivity_timeout=10):
                assert method is not None
                settle(channel, method.delivery_tag)
                break
            channel.cancel()
            processed = spans.named(f"{queue} receive")
        else:
            method, properties, _body = channel.basic_get(queue)
            assert method is not None
            with otel_kit.message_context(properties):
                settle(channel, method.delivery_tag)
            processed = spans.named("process")
            assert spans.named(f"{queue} receive").status.status_code is StatusCode.UNSET

    if description is None:
        assert processed.status.status_code is StatusCode.UNSET
    else:
        assert (processed.status.status_code, processed.status.description) == (StatusCode.ERROR, description)


def test_a_rejection_after_the_processing_ended_marks_nothing(kit, amqp, unique, spans):
    queue = f"late-{unique}"
    with pika.BlockingConnection(amqp) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, auto_delete=True)
        channel.basic_publish("", queue, b"{}")
        for method, _properties, _body in channel.consume(queue, inactivity_timeout=10):
            assert method is not None
            tag = method.delivery_tag
            break  # the loop is left: the message's consumer span ends
        channel.basic_reject(tag, requeue=False)
        channel.cancel()
    assert spans.named(f"{queue} receive").status.status_code is StatusCode.UNSET
