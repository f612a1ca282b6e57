"""One order, one trace: FastAPI -> psycopg2 -> pika -> three kinds of consumer -> httpx -> FastAPI."""

from __future__ import annotations

import contextlib
import functools
import json

import httpx
import pika
import psycopg2
import psycopg2.extras
import psycopg2.sql
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind

import otel_kit
from otel_kit.integrations import psycopg2 as psycopg2_integration
from tests.helpers import serve


def crm_app() -> FastAPI:
    app = FastAPI()

    @app.post("/customers/{customer}/orders")
    def register(customer: str) -> dict:
        return {"customer": customer, "order": otel_kit.current_order_id()}

    return app


def shop_app(dsn: str, amqp: pika.ConnectionParameters, exchange: str) -> FastAPI:
    app = FastAPI()

    @app.post("/orders/{order_id}")
    def create(order_id: str, items: int) -> dict:
        with otel_kit.order(order_id):
            with psycopg2.connect(dsn) as conn:
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO orders (id, items) VALUES (%s, %s)", (order_id, items))
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    cur.execute("SELECT id, items FROM orders WHERE id = %s", (order_id,))
                    row = cur.fetchone()
            with pika.BlockingConnection(amqp) as connection:
                connection.channel().basic_publish(exchange, "order.created", json.dumps(row).encode())
        return row

    return app


def _declare(amqp: pika.ConnectionParameters, exchange: str, queues: list[str]) -> None:
    with pika.BlockingConnection(amqp) as connection:
        channel = connection.channel()
        channel.exchange_declare(exchange, "fanout")
        for queue in queues:
            channel.queue_declare(queue)
            channel.queue_bind(queue, exchange)


def test_one_trace_across_http_db_broker_and_every_consumer_kind(kit, dsn, amqp, unique, spans):
    exchange = f"orders-{unique}"
    q_callback, q_generator, q_get = (f"{kind}-{unique}" for kind in ("callback", "generator", "get"))
    _declare(amqp, exchange, [q_callback, q_generator, q_get])

    with serve(crm_app()) as crm_url:
        response = TestClient(shop_app(dsn, amqp, exchange)).post(f"/orders/ORD-{unique}?items=2")
        assert response.status_code == 200

        def register(via: str) -> None:
            answer = httpx.post(f"{crm_url}/customers/{via}/orders").json()
            assert answer == {"customer": via, "order": f"ORD-{unique}"}

        with pika.BlockingConnection(amqp) as connection:
            channel = connection.channel()

            def on_message(ch, method, properties, body):
                register("callback")
                ch.basic_ack(method.delivery_tag)
                ch.stop_consuming()

            channel.basic_consume(q_callback, on_message)
            channel.start_consuming()

            for method, _properties, _body in channel.consume(q_generator, inactivity_timeout=10):
                assert method is not None, "no message on the generator queue"
                register("generator")
                channel.basic_ack(method.delivery_tag)
                break
            channel.cancel()

            method, properties, _body = channel.basic_get(q_get, auto_ack=True)
            assert method is not None
            with otel_kit.message_context(properties):
                register("get")

    finished = spans.all()
    names = sorted(span.name for span in finished)
    assert names == sorted(
        [
            "POST /orders/{order_id}",
            "INSERT orders",
            "SELECT orders",  # made by a RealDictCursor: cursor_factory cursors are traced too
            f"{exchange} send",
            *[f"{exchange} receive"] * 3,
            "process",
            *["POST"] * 3,
            *["POST /customers/{customer}/orders"] * 3,
        ]
    )
    assert len({span.context.trace_id for span in finished}) == 1
    untagged = [span.name for span in finished if span.attributes.get("order.id") != f"ORD-{unique}"]
    assert untagged == []

    publish = next(span for span in finished if span.kind == SpanKind.PRODUCER)
    receives = [span for span in finished if span.name == f"{exchange} receive"]
    assert all(span.parent.span_id == publish.context.span_id for span in receives)
    by_id = {span.context.span_id: span for span in finished}
    clients = [span for span in finished if span.kind == SpanKind.CLIENT and span.name == "POST"]
    parents = sorted(by_id[span.parent.span_id].name for span in clients)
    # Callback and generator spans enclose the processing; after basic_get, message_context does.
    assert parents == sorted([f"{exchange} receive", f"{exchange} receive", "process"])

    generator_span = next(
        span for span in receives if any(by_id[c.parent.span_id] is span for c in clients) and span.end_time
    )
    assert generator_span.end_time > generator_span.start_time

    insert = next(span for span in finished if span.name == "INSERT orders")
    assert insert.attributes["db.system"] == "postgresql"
    assert insert.attributes["db.collection.name"] == "orders"
    assert insert.attributes["db.statement"] == "INSERT INTO orders (id, items) VALUES (%s, %s)"
    assert f"ORD-{unique}" not in json.dumps(dict(insert.attributes)).replace(f'"ORD-{unique}"', "", 1)
    assert publish.attributes["messaging.destination.name"] == exchange


def test_every_connection_is_traced_by_classes_made_once(kit, dsn, spans):
    """A class per connect() cost CPU on every connection of a service that connects per message."""
    first, second = psycopg2.connect(dsn), psycopg2.connect(dsn, cursor_factory=psycopg2.extras.DictCursor)
    try:
        third = psycopg2.connect(dsn, cursor_factory=psycopg2.extras.DictCursor)
        assert type(first) is type(second) is type(third)
        assert type(second.cursor()) is type(third.cursor())
        for connection in (first, second, third):
            with connection.cursor() as cur:
                cur.execute("SELECT 1")
        third.close()
    finally:
        first.close()
        second.close()

    db_spans = [span for span in spans.all() if span.kind is SpanKind.CLIENT and span.name == "SELECT"]
    assert len(db_spans) == 3
    assert all(span.attributes["db.system"] == "postgresql" for span in db_spans)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT id, items FROM orders WHERE id = %s",
        "INSERT INTO orders (id, items) VALUES (%s, 3) ON CONFLICT DO NOTHING",
        "SELECT * FROM missing_table WHERE note = 'secret'",
        psycopg2.sql.SQL("SELECT {} FROM orders WHERE id = %s").format(psycopg2.sql.Identifier("items")),
    ],
    ids=["select", "insert with a literal", "failing", "composed"],
)
def test_statement_spans_made_once_match_contrib_per_execute(kit, dsn, spans, statement):
    """The kit works out a statement's span name and attributes once; contrib's path, every time."""
    tracer_class = psycopg2_integration._CursorTracer
    with psycopg2.connect(dsn) as connection:
        connection.autocommit = True
        for _ in range(2):  # the first execute works them out, the second reuses them
            with connection.cursor() as cur, contextlib.suppress(psycopg2.Error):
                cur.execute(statement, ("P-1",))
        with connection.cursor() as cur, contextlib.suppress(psycopg2.Error):
            tracer = getattr(connection, psycopg2_integration._TRACER_ATTRIBUTE)
            untraced = functools.partial(psycopg2.extensions.cursor.execute, cur)
            super(tracer_class, tracer).traced_execution(cur, untraced, statement, ("P-1",))

    first, cached, contrib = [span for span in spans.all() if span.kind is SpanKind.CLIENT]
    for span in (first, cached):
        assert (span.name, span.status.status_code) == (contrib.name, contrib.status.status_code)
        assert dict(span.attributes) == dict(contrib.attributes)
        assert [event.name for event in span.events] == [event.name for event in contrib.events]
    assert any(key is statement for key in tracer._details) is isinstance(
        statement, str
    )  # composed: contrib's way
    if "missing_table" in str(statement):
        assert [event.name for event in cached.events] == ["exception"]
    assert "P-1" not in str(dict(cached.attributes))
    assert "secret" not in str(dict(cached.attributes))


_LONG_IN = ", ".join(["%s"] * 1500)  # over 4,096 characters: worked out each time, never cached
_INSERTS = {
    "bytes": lambda cur: cur.execute(b"INSERT INTO orders VALUES (%s, 1)", ("W-bytes",)),
    "sql.SQL": lambda cur: cur.execute(psycopg2.sql.SQL("INSERT INTO orders VALUES ('W-sql', 1)")),
    "execute_values": lambda cur: psycopg2.extras.execute_values(
        cur, "INSERT INTO orders VALUES %s", [("W-values", 1)]
    ),
    "execute_batch": lambda cur: psycopg2.extras.execute_batch(
        cur, "INSERT INTO orders VALUES (%s, 1)", [("W-batch",)]
    ),
    # Literals in PostgreSQL's other string forms: the scrubber paired their quotes wrongly.
    "dollar-quoted": lambda cur: cur.execute("INSERT INTO orders VALUES ($$W-dollar$$, 1)"),
    "escape string": lambda cur: cur.execute(r"INSERT INTO orders VALUES (E'W-it\'s W-escape', 1)"),
    "long": lambda cur: cur.execute(
        f"INSERT INTO orders SELECT id, 1 FROM unnest(ARRAY[{_LONG_IN}]) AS id",
        ["W-long", *(f"W-long-{n}" for n in range(1499))],
    ),
}


@pytest.mark.parametrize("form", _INSERTS)
def test_every_form_of_statement_runs_and_is_traced_without_its_values(kit, dsn, spans, form):
    """Bytes (what execute_values and execute_batch send) and a bare sql.SQL made the kit raise."""
    with psycopg2.connect(dsn) as connection, connection.cursor() as cur:
        _INSERTS[form](cur)
        cur.execute("SELECT count(*) FROM orders WHERE id LIKE 'W-%%'")
        (inserted,) = cur.fetchone()
        tracer = getattr(connection, psycopg2_integration._TRACER_ATTRIBUTE)
        connection.rollback()

    assert inserted >= 1
    insert = next(span for span in spans.all() if span.kind is SpanKind.CLIENT)
    assert insert.name == "INSERT orders"
    assert insert.attributes["db.collection.name"] == "orders"
    assert "W-" not in insert.attributes["db.statement"]
    assert all(len(key) <= psycopg2_integration.MAX_CACHED_LENGTH for key in tracer._details)


def test_a_statement_the_kit_cannot_describe_runs_untraced(kit, dsn, spans, monkeypatch):
    def fail(*args):
        raise RuntimeError("cannot describe this statement")

    monkeypatch.setattr(psycopg2_integration._CursorTracer, "_remember", fail)
    with psycopg2.connect(dsn) as connection, connection.cursor() as cur:
        cur.execute("SELECT 42 AS never_seen_before")
        assert cur.fetchone() == (42,)
    assert [span for span in spans.all() if span.kind is SpanKind.CLIENT] == []
