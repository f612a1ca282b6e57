"""The PostgreSQL figures the stack adds to postgres_exporter (deploy/postgres-exporter/queries.yaml)
follow what really happens in the instance: a session held up by another's lock is counted,
with how long it has waited, in that instance's series only."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg2
import pytest

from tests.stack_fixtures import eventually, prom_query, prom_value

DSN = {
    "shop": "host=127.0.0.1 port=5433 dbname=shop user=postgres",
    "mes": "host=127.0.0.1 port=5434 dbname=mes user=postgres",
}


@pytest.fixture
def lock_wait(stack: None) -> Iterator[None]:
    """One session holds a table lock in the MES db; a second one waits for it until the test ends."""
    holder = psycopg2.connect(DSN["mes"])
    holder.cursor().execute("CREATE TABLE IF NOT EXISTS lock_wait_probe (id int)")
    holder.commit()
    holder.cursor().execute("LOCK TABLE lock_wait_probe IN ACCESS EXCLUSIVE MODE")
    waiter = psycopg2.connect(DSN["mes"])
    blocked = threading.Thread(target=lambda: waiter.cursor().execute("SELECT * FROM lock_wait_probe"))
    blocked.start()
    try:
        yield
    finally:
        holder.rollback()  # releases the lock: the waiting SELECT completes
        blocked.join(timeout=10)
        waiter.close()
        with holder, holder.cursor() as cur:
            cur.execute("DROP TABLE lock_wait_probe")
        holder.close()


def test_a_lock_wait_is_counted_with_its_age_in_its_instance_only(lock_wait: None) -> None:
    waiting = 'pg_lock_waits_sessions{database="mes", datname="mes"}'
    eventually(lambda: prom_value(waiting) == 1, timeout=60, interval=1)
    # Scraped again later, the same wait is older: the age grows while it lasts.
    age = 'pg_lock_waits_max_seconds{database="mes"}'
    first = prom_value(age)
    eventually(lambda: prom_value(age) > first, timeout=60, interval=1)
    assert prom_value('pg_lock_waits_sessions{database="shop"}') == 0


def test_query_time_and_index_use_are_per_database(stack: None) -> None:
    for database in DSN:
        calls = f'pg_statements_calls_total{{database="{database}"}}'
        eventually(lambda q=calls: prom_value(q) > 0, timeout=60)
    with psycopg2.connect(DSN["shop"]) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS scan_probe (id int PRIMARY KEY)")
    scans = 'pg_table_scans_seq_scan{database="shop", relname="scan_probe"}'
    # A new table appears at the exporter's next scrape.
    before = float(eventually(lambda: prom_query(scans), timeout=60, interval=1)[0]["value"][1])
    with psycopg2.connect(DSN["shop"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM scan_probe")  # a whole-table read: a sequential scan
    eventually(lambda: prom_value(scans) > before, timeout=60, interval=1)
    with psycopg2.connect(DSN["shop"]) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE scan_probe")
