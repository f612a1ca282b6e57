"""Three small services for the stack tests, one per process: `STACK_SERVICE=shop|mes|crm uvicorn ...`.

shop  POST /orders -> publishes to RabbitMQ queue STACK_QUEUE (its SERVER span names the user)
mes   consumes the queue -> POST {STACK_CRM_URL}/customers/{user}/orders over HTTP
crm   POST /customers/{user}/orders -> 201, or 500 when the order asks for a CRM failure

shop also records values the collector must redact (an e-mail, a card number, a password,
an SQL literal) so the tests can check that none reaches Jaeger, and logs an e-mail address and a
card number that must not reach Elasticsearch. Each service logs a warning per order (found in
Elasticsearch by the order's id).
"""

from __future__ import annotations

import json
import logging
import os
import threading

import otel_kit

SERVICE = os.environ["STACK_SERVICE"]
otel_kit.init(SERVICE)

import httpx  # noqa: E402 - after init, so clients are traced
import pika  # noqa: E402
from fastapi import FastAPI, HTTPException  # noqa: E402
from opentelemetry import trace  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from tests.stack.redacted import SECRET_VALUES  # noqa: E402

QUEUE = os.environ.get("STACK_QUEUE", "stack-test.order.created")
AMQP = pika.ConnectionParameters(host="127.0.0.1", port=5672)

app = FastAPI()
_tracer = trace.get_tracer("tests.stack")
_local = threading.local()
log = logging.getLogger(f"tests.stack.{SERVICE}")


class Order(BaseModel):
    id: str
    user: str
    crm_fails: bool = False


@app.get("/health")
def health() -> dict:
    return {"service": SERVICE}


if SERVICE == "shop":

    @app.post("/orders", status_code=201)
    def create_order(order: Order) -> dict:
        trace.get_current_span().set_attribute("enduser.id", order.user)
        with otel_kit.order(order.id):
            with _tracer.start_as_current_span("check customer") as span:
                span.set_attributes({"db.system.name": "postgresql", **SECRET_VALUES})
            channel = getattr(_local, "channel", None)
            if channel is None or channel.is_closed:
                channel = _local.channel = pika.BlockingConnection(AMQP).channel()
                channel.queue_declare(QUEUE)
            channel.basic_publish("", QUEUE, order.model_dump_json().encode())
            email, card = SECRET_VALUES["customer.email"], SECRET_VALUES["payment.card"]
            log.warning("order %s accepted from %s paying with %s", order.id, email, card)
        return {"id": order.id}


if SERVICE == "mes":

    def _consume() -> None:
        channel = pika.BlockingConnection(AMQP).channel()
        channel.queue_declare(QUEUE)
        crm = os.environ["STACK_CRM_URL"]
        with httpx.Client(base_url=crm, timeout=10) as client:

            def on_message(ch, method, _properties, body: bytes) -> None:
                order = json.loads(body)
                log.warning("order %s handed to the CRM", order["id"])
                client.post(f"/customers/{order['user']}/orders", json=order)
                ch.basic_ack(method.delivery_tag)

            channel.basic_consume(QUEUE, on_message)
            channel.start_consuming()

    threading.Thread(target=_consume, daemon=True, name="mes-consumer").start()


if SERVICE == "crm":

    @app.post("/customers/{user}/orders", status_code=201)
    def register(user: str, order: Order) -> dict:
        log.warning("order %s registered for %s", order.id, user)
        if order.crm_fails:
            raise HTTPException(500, "CRM failure requested by the order")
        return {"user": user, "order": order.id}
