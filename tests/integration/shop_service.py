"""A small shop service run by uvicorn in a subprocess: the way a real service uses the kit.

Configured by SHOP_DSN and SHOP_AMQP_PORT. Its own error handling (reconnect, 503 when
the broker is away) is what any service needs; the tests check that telemetry adds no
failure of its own to it.
"""

import os

import otel_kit

otel_kit.init("shop")

import pika  # noqa: E402 - after init, so connections are traced
import psycopg2  # noqa: E402
from fastapi import FastAPI, HTTPException  # noqa: E402

app = FastAPI()
_amqp = pika.ConnectionParameters(host="127.0.0.1", port=int(os.environ["SHOP_AMQP_PORT"]), socket_timeout=2)
_channel = None


def _publish(body: bytes) -> None:
    global _channel
    for attempt in (1, 2):
        try:
            if _channel is None or _channel.is_closed:
                _channel = pika.BlockingConnection(_amqp).channel()
                _channel.queue_declare("shop-orders")
            _channel.basic_publish("", "shop-orders", body)
            return
        except pika.exceptions.AMQPError:
            _channel = None
            if attempt == 2:
                raise


@app.get("/health")
def health() -> dict:
    return {"ok": True}


@app.post("/orders/{order_id}")
def create(order_id: str) -> dict:
    with otel_kit.order(order_id):
        with psycopg2.connect(os.environ["SHOP_DSN"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT %s::text", (order_id,))
        try:
            _publish(order_id.encode())
        except pika.exceptions.AMQPError as exc:
            raise HTTPException(503, f"broker unavailable: {type(exc).__name__}") from exc
    return {"id": order_id}
