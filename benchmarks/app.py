"""The benchmarked service: one trivial and one realistic endpoint (one SELECT + one publish).

BENCH_MODE=kit calls otel_kit.init; bare and zero-code leave the code untouched (zero-code
runs under opentelemetry-instrument). BENCH_DSN / BENCH_AMQP_PORT point at the servers.
"""

import os
import threading
from contextlib import nullcontext

if os.environ.get("BENCH_MODE") == "kit":
    import otel_kit

    otel_kit.init("bench")
    order = otel_kit.order
else:
    order = nullcontext

import pika
import psycopg2
from fastapi import FastAPI

app = FastAPI()
_local = threading.local()  # sync endpoints run in a thread pool: one connection per thread


def _resources() -> tuple:
    if not hasattr(_local, "db"):
        _local.db = psycopg2.connect(os.environ["BENCH_DSN"])
        _local.db.autocommit = True
        port = int(os.environ["BENCH_AMQP_PORT"])
        _local.channel = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)).channel()
        _local.channel.queue_declare("bench", arguments={"x-max-length": 1000})
    return _local.db, _local.channel


@app.get("/trivial")
async def trivial() -> dict:
    return {"ok": True}


@app.get("/realistic/{order_id}")
def realistic(order_id: str) -> dict:
    db, channel = _resources()
    with order(order_id), db.cursor() as cur:
        cur.execute("SELECT id, items FROM orders WHERE id = %s", (order_id,))
        row = cur.fetchone()
        channel.basic_publish("", "bench", order_id.encode())
    return {"id": order_id, "found": row is not None}
