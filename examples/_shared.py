"""What the three example services share: where the servers are, the RabbitMQ topology, a consumer loop.

None of it is telemetry: the services' only telemetry code is `otel_kit.init(...)` and
`otel_kit.order(...)` where an order enters.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import pika
from pika.adapters.blocking_connection import BlockingChannel

log = logging.getLogger("examples")

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
SHOP_DSN = os.environ.get("SHOP_DSN", "host=127.0.0.1 port=5433 dbname=shop user=postgres")
MES_DSN = os.environ.get("MES_DSN", "host=127.0.0.1 port=5434 dbname=mes user=postgres")
S3_ENDPOINT = os.environ.get("S3_ENDPOINT", "http://127.0.0.1:9000")
# The MES's own S3 user, which the local stack creates (deploy/local/stack.py S3_SERVICE_USER).
S3_KEY = os.environ.get("S3_ACCESS_KEY", "mes-service")
S3_SECRET = os.environ.get("S3_SECRET_KEY", "mes-service-local-only")
S3_BUCKET = os.environ.get("S3_BUCKET", "production-docs")
CRM_URL = os.environ.get("CRM_URL", "http://127.0.0.1:8002")
CRM_TIMEOUT = float(os.environ.get("CRM_TIMEOUT", "1.0"))
MES_URL = os.environ.get("MES_URL", "http://127.0.0.1:8003")

EXCHANGE, DEAD_LETTER_EXCHANGE = "orders", "orders.dlx"
ORDER_CREATED, ORDER_STATUS = "order.created", "order.status"
# Queues, their bindings on EXCHANGE, and who consumes them. Every queue dead-letters into
# DEAD_LETTER_EXCHANGE; "legacy.order-created" is the queue nobody consumes any more (the
# `unconsumed` fault publishes there, as an old client still does).
QUEUES = {
    "mes.order-created": ORDER_CREATED,
    "shop.order-status": ORDER_STATUS,
    "legacy.order-created": "order.created.v1",
}
DEAD_LETTERS = "orders.dead-letters"

FAULTS = ("mes_crash", "reject", "crm_500", "crm_slow", "slow_db", "s3_denied", "unconsumed")
# The shop's status for an order once it has settled, per fault ("none": a healthy order).
SETTLED_STATUS = {
    "none": "completed",
    "mes_crash": "completed",  # redelivered to a restarted worker
    "slow_db": "completed",
    "reject": "failed",  # dead-lettered
    "crm_500": "failed",
    "crm_slow": "failed",
    "s3_denied": "failed",
    "unconsumed": "created",  # lost: nobody will ever process it
}


def declare_topology(channel: BlockingChannel) -> None:
    """Idempotent: every service declares the whole topology at start."""
    channel.exchange_declare(EXCHANGE, "topic", durable=True)
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, "topic", durable=True)
    for queue, key in QUEUES.items():
        channel.queue_declare(queue, durable=True, arguments={"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE})
        channel.queue_bind(queue, EXCHANGE, key)
    channel.queue_declare(DEAD_LETTERS, durable=True)
    channel.queue_bind(DEAD_LETTERS, DEAD_LETTER_EXCHANGE, "#")


def connect() -> BlockingChannel:
    channel = pika.BlockingConnection(pika.URLParameters(AMQP_URL)).channel()
    declare_topology(channel)
    return channel


class WorkerCrash(Exception):
    """Raised out of a consumer callback: the worker dies mid-order, as a process would."""


def consume_forever(
    queue: str, callback: Callable, stop: threading.Event, paused: Callable[[], bool] = lambda: False
) -> threading.Thread:
    """Consume `queue` in a thread, reconnecting after a broker outage or a crashed worker.

    A crash closes the connection without an ack, so RabbitMQ redelivers the message to
    the next consumer: at-least-once, as the real services run. While `paused()` is true
    the consumer is gone from the broker (its connection closed), as a dead worker's is.
    """

    def run() -> None:
        while not stop.is_set():
            if paused():
                time.sleep(0.5)
                continue
            connection = None
            try:
                channel = connect()
                connection = channel.connection
                channel.basic_qos(prefetch_count=1)
                channel.basic_consume(queue, callback)
                while not stop.is_set() and not paused():
                    connection.process_data_events(time_limit=0.5)
            except WorkerCrash as crash:
                log.error("consumer of %s crashed: %s; restarting", queue, crash)
            except pika.exceptions.AMQPError as error:
                log.warning("consumer of %s lost the broker (%r); reconnecting", queue, error)
                time.sleep(1)
            except Exception:  # whatever a callback raised: the consumer lives on
                log.exception("consumer of %s failed; restarting", queue)
                time.sleep(1)
            finally:
                if connection is not None and connection.is_open:
                    connection.close()

    thread = threading.Thread(target=run, name=f"consume-{queue}", daemon=True)
    thread.start()
    return thread
