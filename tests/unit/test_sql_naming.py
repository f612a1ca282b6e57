"""psycopg2 span names (operation + table) and statement scrubbing, as pure functions."""

import pytest

from otel_kit.integrations.psycopg2 import scrub, summarize


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("INSERT INTO orders (id, total) VALUES (%s, %s)", ("INSERT", "orders")),
        ("select * from public.orders where id = %s", ("SELECT", "public.orders")),
        ('UPDATE "Orders" SET status = %s', ("UPDATE", "Orders")),
        ("DELETE FROM ONLY orders WHERE id = 1", ("DELETE", "orders")),
        ("/* app */ SELECT count(*) FROM plans", ("SELECT", "plans")),
        ("-- note\nSELECT 1", ("SELECT", None)),
        ("BEGIN", ("BEGIN", None)),
        ("CREATE TABLE IF NOT EXISTS orders (id text)", ("CREATE", None)),
        ("   ", ("", None)),
    ],
)
def test_summarize(statement, expected):
    assert summarize(statement) == expected


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            "SELECT * FROM cards WHERE number = '4111 1111 1111 1111' AND cvv = 123",
            "SELECT * FROM cards WHERE number = ? AND cvv = ?",
        ),
        ("INSERT INTO t VALUES ('it''s', -4.5e3)", "INSERT INTO t VALUES (?, ?)"),
        (
            "SELECT * FROM t1 WHERE a = %s AND b = $1 AND c = %(name)s",
            "SELECT * FROM t1 WHERE a = %s AND b = $1 AND c = %(name)s",
        ),
    ],
)
def test_scrub_replaces_literals_and_keeps_placeholders_and_names(statement, expected):
    assert scrub(statement) == expected
