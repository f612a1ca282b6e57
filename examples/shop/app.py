"""The internet shop API: customers get quotes, place orders and poll them; orders go out over RabbitMQ.

uvicorn examples.shop.app:app --port 8001
"""

from __future__ import annotations

import otel_kit

otel_kit.init("shop")

import json  # noqa: E402 - libraries after init, so that they are traced
import logging  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402

import httpx  # noqa: E402
import pika  # noqa: E402
import psycopg2  # noqa: E402
from fastapi import FastAPI, HTTPException  # noqa: E402
from opentelemetry import trace  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from examples import _ops, _shared  # noqa: E402

MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS orders (
        id text PRIMARY KEY,
        customer_id text NOT NULL,
        items jsonb NOT NULL,
        status text NOT NULL DEFAULT 'created',
        price numeric,
        reason text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
]


class Item(BaseModel):
    sku: str
    quantity: int = Field(gt=0)


class Basket(BaseModel):
    items: list[Item] = Field(min_length=1)


class QuoteRequest(Basket):
    customer_id: str | None = None  # who asks, if known: RPS per user


class NewOrder(Basket):
    customer_id: str
    # A fault to inject for this order (see examples/README.md); None for a healthy order.
    fault: str | None = None


log = logging.getLogger("shop")
_local = threading.local()
_stop = threading.Event()
# Quotes are interactive: a customer waits on them, so production gets a short deadline.
_mes = httpx.Client(base_url=_shared.MES_URL, timeout=1.0)


def _db():
    return psycopg2.connect(_shared.SHOP_DSN)


def _channel():
    """This thread's channel, reconnected if the broker dropped it.

    A thread's connection that sat idle past the heartbeat timeout has been closed by
    RabbitMQ without pika noticing (a blocking connection answers heartbeats only while
    it is used): reading the socket first finds that out before a publish does.
    """
    channel = getattr(_local, "channel", None)
    if channel is not None and channel.is_open:
        try:
            channel.connection.process_data_events(time_limit=0)
        except pika.exceptions.AMQPError:
            channel = None
    if channel is None or channel.is_closed:
        channel = _local.channel = _shared.connect()
    return channel


def _publish(key: str, body: bytes) -> None:
    """Publish on this thread's channel, once more on a new one if the socket was reset."""
    try:
        _channel().basic_publish(_shared.EXCHANGE, key, body)
    except pika.exceptions.AMQPConnectionError:
        _local.channel = None
        _channel().basic_publish(_shared.EXCHANGE, key, body)


def _on_status(channel, method, _properties, body: bytes) -> None:
    message = json.loads(body)
    with _db() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE orders SET status = %s, price = %s, updated_at = now() WHERE id = %s",
            (message["status"], message.get("price"), message["order_id"]),
        )
    channel.basic_ack(method.delivery_tag)


def _on_dead_letter(channel, method, properties, body: bytes) -> None:
    """An order that could not be processed: mark it failed so support sees it, keep the reason."""
    message = json.loads(body)
    death = (properties.headers or {}).get("x-death", [{}])[0]
    reason = f"dead-lettered from {death.get('queue', '?')} ({death.get('reason', '?')})"
    with _db() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE orders SET status = 'failed', reason = %s, updated_at = now() WHERE id = %s",
            (reason, message.get("order_id")),
        )
    channel.basic_ack(method.delivery_tag)


@asynccontextmanager
async def lifespan(_app: FastAPI):
    with _db() as conn, conn.cursor() as cur:
        for migration in MIGRATIONS:
            cur.execute(migration)
    _shared.consume_forever("shop.order-status", _on_status, _stop)
    _shared.consume_forever(_shared.DEAD_LETTERS, _on_dead_letter, _stop)
    yield
    _stop.set()


app = FastAPI(title="shop", lifespan=lifespan)
app.include_router(_ops.router)


@app.get("/health")
def health() -> dict:
    return {"service": "shop"}


@app.post("/quotes")
def quote(request: QuoteRequest) -> dict:
    """What the basket would cost and how busy production is, from the MES.

    A separate request from the order: while production is down a customer gets no quote
    (503) but can still order, and the order waits in RabbitMQ until the MES is back.
    """
    if request.customer_id is not None:
        trace.get_current_span().set_attribute("enduser.id", request.customer_id)
    try:
        response = _mes.post("/quotes", json=request.model_dump())
        response.raise_for_status()
    except httpx.HTTPError as error:
        # The customer learns that pricing is down, not where our MES lives or how it failed.
        log.warning("quote failed: the MES at %s: %r", _shared.MES_URL, error)
        raise HTTPException(503, "no quote now: pricing is unavailable; orders are still accepted") from None
    return response.json()


@app.post("/orders", status_code=201)
def place_order(new: NewOrder) -> dict:
    if new.fault is not None and new.fault not in _shared.FAULTS:
        raise HTTPException(422, f"unknown fault {new.fault!r}; one of {', '.join(_shared.FAULTS)}")
    order_id = f"ord-{uuid.uuid4().hex[:12]}"
    # The request's user, for RPS per user (the collector's per-user view, capped per service).
    trace.get_current_span().set_attribute("enduser.id", new.customer_id)
    with otel_kit.order(order_id):
        items = [item.model_dump() for item in new.items]
        with _db() as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO orders (id, customer_id, items) VALUES (%s, %s, %s)",
                (order_id, new.customer_id, json.dumps(items)),
            )
        message = {"order_id": order_id, "customer_id": new.customer_id, "items": items, "fault": new.fault}
        # An old client still publishes the v1 event, which nothing consumes any more.
        key = "order.created.v1" if new.fault == "unconsumed" else _shared.ORDER_CREATED
        _publish(key, json.dumps(message).encode())
    return {"id": order_id, "status": "created"}


@app.get("/orders/{order_id}")
def get_order(order_id: str) -> dict:
    with _db() as conn, conn.cursor() as cur:
        cur.execute("SELECT customer_id, status, price, reason FROM orders WHERE id = %s", (order_id,))
        row = cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no order {order_id}")
    customer_id, status, price, reason = row
    price = None if price is None else float(price)
    return {"id": order_id, "customer_id": customer_id, "status": status, "price": price, "reason": reason}
