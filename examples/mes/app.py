"""The MES (production) API: quotes orders and turns created orders into priced production plans.

`POST /quotes` prices a basket and tells the production backlog (the shop asks it, over
HTTP, before a customer orders). For each `order.created` message: price and plan the order
(MES db), store the production document in S3, register the order with the CRM over HTTP,
then publish the order's status.
An order it cannot process is rejected into the dead-letter exchange.

    uvicorn examples.mes.app:app --port 8003
"""

from __future__ import annotations

import otel_kit

otel_kit.init("mes")

import functools  # noqa: E402 - libraries after init, so that they are traced
import json  # noqa: E402
import logging  # noqa: E402
import threading  # noqa: E402
from contextlib import asynccontextmanager, suppress  # noqa: E402

import boto3  # noqa: E402
import httpx  # noqa: E402
import psycopg2  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402
from fastapi import FastAPI, Query  # noqa: E402
from opentelemetry import trace  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from examples import _ops, _shared  # noqa: E402

log = logging.getLogger("mes")
UNIT_PRICE = {"widget": 12.5, "gear": 40.0, "frame": 120.0}
MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS production_plans (
        order_id text PRIMARY KEY,
        price numeric NOT NULL,
        minutes int NOT NULL,
        planned_at timestamptz NOT NULL DEFAULT now()
    )""",
]
_stop = threading.Event()
_consumer_paused = _ops.Pause()  # deploy/local/incident consumer-stop
_crm = httpx.Client(base_url=_shared.CRM_URL, timeout=_shared.CRM_TIMEOUT)


@functools.cache
def _s3(secret: str = _shared.S3_SECRET):
    """One client per credentials, made once: creating a boto3 client costs tens of ms."""
    return boto3.client(
        "s3",
        endpoint_url=_shared.S3_ENDPOINT,
        aws_access_key_id=_shared.S3_KEY,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )


class Item(BaseModel):
    sku: str
    quantity: int = Field(gt=0)


class Basket(BaseModel):
    items: list[Item] = Field(min_length=1)
    customer_id: str | None = None  # the shop's customer the quote is for


def _cost(items: list[dict]) -> tuple[float, int]:
    """The price and the production minutes of a basket: what a quote and a plan both use."""
    price = sum(UNIT_PRICE.get(item["sku"], 10.0) * item["quantity"] for item in items)
    return price, sum(item["quantity"] for item in items) * 15


def _plan(order: dict) -> tuple[float, int]:
    price, minutes = _cost(order["items"])
    with psycopg2.connect(_shared.MES_DSN) as conn, conn.cursor() as cur:
        if order.get("fault") == "slow_db":
            cur.execute("SELECT pg_sleep(2)")  # a plan query that lost its index
        cur.execute(
            "INSERT INTO production_plans (order_id, price, minutes) VALUES (%s, %s, %s) "
            "ON CONFLICT (order_id) DO UPDATE SET price = EXCLUDED.price, minutes = EXCLUDED.minutes",
            (order["order_id"], price, minutes),
        )
    return price, minutes


def _process(channel, order: dict) -> None:
    fault = order.get("fault")
    price, minutes = _plan(order)
    # Credentials rotated under the service: the S3 write is denied.
    s3 = _s3("rotated-away") if fault == "s3_denied" else _s3()
    document = {"order_id": order["order_id"], "price": price, "minutes": minutes, "items": order["items"]}
    s3.put_object(
        Bucket=_shared.S3_BUCKET, Key=f"{order['order_id']}.json", Body=json.dumps(document).encode()
    )
    response = _crm.post(
        f"/customers/{order['customer_id']}/orders",
        json={"order_id": order["order_id"], "price": price, "fault": fault},
    )
    response.raise_for_status()
    status = {"order_id": order["order_id"], "status": "completed", "price": price}
    channel.basic_publish(_shared.EXCHANGE, _shared.ORDER_STATUS, json.dumps(status).encode())


def _on_order_created(channel, method, _properties, body: bytes) -> None:
    order = json.loads(body)
    fault = order.get("fault")
    if fault == "mes_crash" and not method.redelivered:
        raise _shared.WorkerCrash(f"MES worker crashed mid-order {order['order_id']}")
    if fault == "reject":
        log.error("order %s rejected: failed validation", order["order_id"])
        channel.basic_reject(method.delivery_tag, requeue=False)
        return
    try:
        _process(channel, order)
    except (httpx.HTTPError, ClientError, BotoCoreError, psycopg2.Error) as error:
        log.error("order %s failed: %r; dead-lettering it", order["order_id"], error)
        channel.basic_reject(method.delivery_tag, requeue=False)
        return
    except Exception:  # a bug or a malformed order must not kill the consumer for every order
        log.exception("order %s failed unexpectedly; dead-lettering it", order.get("order_id"))
        channel.basic_reject(method.delivery_tag, requeue=False)
        return
    channel.basic_ack(method.delivery_tag)


@asynccontextmanager
async def lifespan(_app: FastAPI):
    with psycopg2.connect(_shared.MES_DSN) as conn, conn.cursor() as cur:
        for migration in MIGRATIONS:
            cur.execute(migration)
    s3 = _s3()
    with suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=_shared.S3_BUCKET)
    _shared.consume_forever("mes.order-created", _on_order_created, _stop, _consumer_paused.is_set)
    yield
    _stop.set()


app = FastAPI(title="mes", lifespan=lifespan)
app.include_router(_ops.router)


@app.post("/ops/consumer/pause", tags=["operations"])
def pause_consumer(seconds: float = Query(gt=0, le=900, description="At most 15 minutes.")) -> dict:
    """Stop consuming order.created for `seconds`: the queue fills, nobody takes from it."""
    _consumer_paused.set(seconds)
    return {"paused_for_s": seconds}


@app.delete("/ops/consumer/pause", tags=["operations"])
def resume_consumer() -> dict:
    _consumer_paused.clear()
    return {"paused_for_s": 0}


@app.get("/health")
def health() -> dict:
    return {"service": "mes"}


@app.post("/quotes")
def quote(basket: Basket) -> dict:
    """The price of a basket, and the production backlog ahead of it (minutes planned in the last hour)."""
    if basket.customer_id is not None:  # the request's user, for RPS per user
        trace.get_current_span().set_attribute("enduser.id", basket.customer_id)
    price, minutes = _cost([item.model_dump() for item in basket.items])
    with psycopg2.connect(_shared.MES_DSN) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT coalesce(sum(minutes), 0) FROM production_plans"
            " WHERE planned_at > now() - interval '1 hour'"
        )
        (backlog,) = cur.fetchone()
    return {"price": price, "minutes": minutes, "backlog_minutes": int(backlog)}
