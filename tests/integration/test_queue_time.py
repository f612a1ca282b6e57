"""The time a message waits between its publish and its consumer, through a real RabbitMQ."""

from __future__ import annotations

import re
import time
import urllib.request

import pika

from otel_kit.integrations.pika import PUBLISHED_AT


def _queue_time(port: int, destination: str) -> tuple[float, float]:
    """(count, sum in ms) of the queue-time histogram for the destination, from the kit's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        text = response.read().decode()
    figures = {}
    for kind in ("count", "sum"):
        found = re.search(
            rf'^otel_kit_messaging_queue_time_milliseconds_{kind}\{{[^}}]*messaging_destination_name="{destination}"'
            r"[^}]*\} (\S+)$",
            text,
            re.MULTILINE,
        )
        figures[kind] = float(found.group(1)) if found else 0.0
    return figures["count"], figures["sum"]


def test_a_consumer_records_how_long_each_message_waited(kit, amqp, unique):
    queue = f"queue-time-{unique}"
    waited = []
    with pika.BlockingConnection(amqp) as connection:
        channel = connection.channel()
        channel.queue_declare(queue)
        channel.basic_publish("", queue, b"{}")
        time.sleep(0.2)  # the wait being measured: the message sits in its queue this long

        def on_message(ch, method, properties, body):
            waited.append(properties.headers[PUBLISHED_AT])
            ch.basic_ack(method.delivery_tag)
            ch.stop_consuming()

        channel.basic_consume(queue, on_message)
        channel.start_consuming()
    assert isinstance(waited[0], int)  # epoch ms, set by the kit's publish
    count, total = _queue_time(kit.metrics_port, queue)
    assert count == 1
    assert 200 <= total < 5000
