"""psycopg2 span names (operation + table) and statement scrubbing, as pure functions."""

import pytest

from otel_kit.integrations._sql import scrub, summarize


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
        ("(SELECT id FROM a) UNION (SELECT id FROM b)", ("SELECT", "a")),
        ("SELECT 'a literal FROM secrets' FROM orders", ("SELECT", "orders")),
        # A CTE: the main statement's operation; a SELECT's first table, which the CTE reads.
        (
            "WITH recent AS (SELECT * FROM orders WHERE at > now()) SELECT count(*) FROM recent",
            ("SELECT", "orders"),
        ),
        (
            "WITH RECURSIVE moved (id) AS MATERIALIZED (DELETE FROM orders WHERE done RETURNING id), "
            "kept AS (SELECT 1) INSERT INTO archive SELECT id FROM moved",
            ("INSERT", "archive"),
        ),
        ("with x as (select ')' from t) update orders set n = 1", ("UPDATE", "orders")),
        ("WITH broken AS (SELECT 1", ("WITH", None)),
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
        # Every string form PostgreSQL has: dollar-quoted, and E'' with backslash escapes.
        ("SELECT $$s3cret$$, $tag$it's$tag$ FROM t", "SELECT ?, ? FROM t"),
        (r"SELECT E'it\'s s3cret', 'next' FROM t", "SELECT ?, ? FROM t"),
        ("SELECT * FROM t WHERE b = B'1010' OR x = X'ff'", "SELECT * FROM t WHERE b = B? OR x = X?"),
        # Numbers in PostgreSQL 16's forms, and a leading dot.
        ("SELECT 0x1F, 0o17, 0b101, 1_000_000, .5, 1., 2.5e-3", "SELECT ?, ?, ?, ?, ?, ?, ?"),
        # A quote or a digit in a quoted name or a comment is not a literal, and pairs with none.
        ('SELECT "col 1", "it\'s" FROM t WHERE a = \'x\'', 'SELECT "col 1", "it\'s" FROM t WHERE a = ?'),
        (
            "SELECT * FROM t -- don't\nWHERE card = '4111 1111' AND n = 7",
            "SELECT * FROM t -- don't\nWHERE card = ? AND n = ?",
        ),
        ("SELECT /* it's */ 'x' FROM t", "SELECT /* it's */ ? FROM t"),
    ],
)
def test_scrub_replaces_literals_and_keeps_placeholders_and_names(statement, expected):
    assert scrub(statement) == expected
