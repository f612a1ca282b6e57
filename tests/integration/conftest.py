"""Real PostgreSQL and RabbitMQ for the session; each test gets its own database objects and queues."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import psycopg2
import pytest

from tests.integration.servers import Server, start_postgres, start_rabbitmq


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_rabbitmq(Path(tmp_path_factory.mktemp("rabbitmq")))
    yield server
    server.stop()


@pytest.fixture
def dsn(postgres: Server) -> str:
    dsn = f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres"
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, items int NOT NULL)")
    return dsn


@pytest.fixture
def amqp(rabbitmq: Server) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(host="127.0.0.1", port=rabbitmq.port, connection_attempts=3)


@pytest.fixture
def unique() -> str:
    """A name unique to this test, for exchanges and queues."""
    return uuid.uuid4().hex[:8]
