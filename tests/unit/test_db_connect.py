"""A connect() to PostgreSQL that fails is an error span: the cause of an order's failure that
a service catches and only logs (contrib records nothing for it)."""

import psycopg2
import pytest
from opentelemetry.trace import SpanKind, StatusCode


def test_a_refused_connect_is_an_error_span_naming_the_database(spans, refusing_collector):
    port = refusing_collector  # a closed port: the connection is refused
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(f"host=127.0.0.1 port={port} dbname=mes user=postgres connect_timeout=2")
    (span,) = spans.all()
    assert (span.name, span.kind, span.status.status_code) == ("connect", SpanKind.CLIENT, StatusCode.ERROR)
    assert "refused" in span.status.description
    assert dict(span.attributes) == {
        "db.system": "postgresql",
        "db.name": "mes",
        "net.peer.name": "127.0.0.1",
        "net.peer.port": port,
        "error.type": "psycopg2.OperationalError",
    }
    (event,) = span.events
    assert event.attributes["exception.type"] == "psycopg2.OperationalError"


def test_connect_keywords_name_the_database_too(spans, refusing_collector):
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host="127.0.0.1", port=refusing_collector, database="shop", user="postgres")
    (span,) = spans.all()
    assert span.attributes["db.name"] == "shop"
    assert span.attributes["net.peer.port"] == refusing_collector
