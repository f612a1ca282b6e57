"""Logs in Elasticsearch: the services' records with their trace and order, RabbitMQ's and
PostgreSQL's own lines parsed, nothing lost over a restart of Elasticsearch, retention by
rollover, and every Kibana saved object's query answered by the real Elasticsearch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pika
import pytest

from otel_kit.cli.log_store import LogLine, LogQuery, LogStore
from tests.helpers import load_script
from tests.stack.conftest import Services
from tests.stack.redacted import SECRET_VALUES
from tests.stack_fixtures import REPO, STACK, eventually

pytestmark = pytest.mark.timeout(300)
retention = load_script(REPO / "deploy/elasticsearch/retention.py")
objects = load_script(REPO / "deploy/kibana/objects.py")
ELASTICSEARCH = "http://127.0.0.1:9200"
PSQL = "/usr/lib/postgresql/15/bin/psql"
HEX = {"trace_id": re.compile(r"^[0-9a-f]{32}$"), "span_id": re.compile(r"^[0-9a-f]{16}$")}


def search(**criteria) -> list[LogLine]:
    since = datetime.now(UTC) - timedelta(minutes=30)
    return LogStore(ELASTICSEARCH).search(LogQuery(since=since, limit=1000, **criteria))


def count(query: str) -> int:
    response = httpx.post(
        f"{ELASTICSEARCH}/{objects.PATTERN}/_count", json={"query": _lucene(query)}, timeout=10
    ).raise_for_status()
    return response.json()["count"]


def _lucene(query: str) -> dict:
    # What Kibana sends for a Lucene-syntax query.
    return {"query_string": {"query": query, "analyze_wildcard": True}}


@dataclass
class Logged:
    order_id: str
    tag: str  # in the PostgreSQL and RabbitMQ lines caused for this run


@pytest.fixture(scope="module")
def logged(services: Services) -> Logged:
    """One order through shop, mes and crm; a failed PostgreSQL login and a syntax error; a
    refused RabbitMQ login. Each service logs a warning for the order (tests/stack/services.py)."""
    order_id, tag = f"logs-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    response = httpx.post(f"{services.shop}/orders", json={"id": order_id, "user": "u-logs"}, timeout=10)
    response.raise_for_status()
    failed_login = subprocess.run(
        [PSQL, "-h", "127.0.0.1", "-p", "5434", "-U", f"nobody_{tag}", "-d", "mes", "-c", "SELECT 1"],
        capture_output=True,
        text=True,
    )
    assert failed_login.returncode != 0
    syntax_error = subprocess.run(
        [PSQL, "-h", "127.0.0.1", "-p", "5433", "-U", "postgres", "-d", "shop", "-c", f"SELEC_{tag} 'x', 42"],
        capture_output=True,
        text=True,
    )
    assert "syntax error" in syntax_error.stderr
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(
            pika.ConnectionParameters("127.0.0.1", credentials=pika.PlainCredentials(f"u-{tag}", "wrong"))
        )
    return Logged(order_id, tag)


def test_one_orders_records_from_every_service_are_found_by_its_id(logged: Logged) -> None:
    lines = eventually(lambda: (found := search(order_id=logged.order_id)) and len(found) >= 3 and found)
    assert sorted(line.service for line in lines) == ["crm", "mes", "shop"]
    for line in lines:
        assert HEX["trace_id"].match(line.trace_id or ""), line
        assert HEX["span_id"].match(line.span_id or ""), line
        assert line.order_id == logged.order_id
        assert line.severity == "WARN"  # the SDK names Python's WARNING so
    assert len({line.trace_id for line in lines}) == 1, "one trace across the three services"
    # The same records by their trace id, as `otel-kit trace` also asks.
    assert len(search(trace_ids=(lines[0].trace_id,))) == len(lines)


def test_log_records_are_redacted_like_spans(logged: Logged) -> None:
    [shop] = eventually(lambda: search(order_id=logged.order_id, services=("shop",)))
    assert logged.order_id in shop.message, "an order id is not a secret (no SQL scrubbing of bodies)"
    for secret in (SECRET_VALUES["customer.email"], SECRET_VALUES["payment.card"]):
        assert secret not in shop.message
    assert "****" in shop.message


def test_postgres_logs_are_parsed(logged: Logged) -> None:
    [login] = eventually(lambda: search(services=("postgres-mes",), text=f"nobody_{logged.tag}"))
    assert (login.severity, login.severity_number) == ("FATAL", 21)
    assert login.message == f'role "nobody_{logged.tag}" does not exist'
    [syntax] = eventually(lambda: search(services=("postgres-shop",), text=f"SELEC_{logged.tag}"))
    assert (syntax.severity, syntax.severity_number) == ("ERROR", 17)
    assert syntax.message == f'syntax error at or near "SELEC_{logged.tag}"'
    document = _document(f'resource.attributes.service.name:postgres-shop AND body.text:"SELEC_{logged.tag}"')
    assert document["attributes"]["db.response.status_code"] == "42601"
    assert document["attributes"]["db.namespace"] == "shop"
    # Literals out of the logged statement, as out of spans' db.query.text.
    assert document["attributes"]["db.query.text"] == f"SELEC_{logged.tag} ?, ?"
    _assert_recent(syntax)


def test_rabbitmq_logs_are_parsed(logged: Logged) -> None:
    [refused] = eventually(lambda: search(services=("rabbitmq",), text=f"u-{logged.tag}"))
    assert (refused.severity, refused.severity_number) == ("ERROR", 17)
    assert f"login refused: user 'u-{logged.tag}' - invalid credentials" in refused.message
    _assert_recent(refused)


def _assert_recent(line: LogLine) -> None:
    """The record's time is the line's own (parsed), not when the collector read it."""
    logged_at = datetime.fromisoformat(line.time.replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - logged_at) < timedelta(minutes=5), line


def _document(query: str) -> dict:
    response = httpx.post(
        f"{ELASTICSEARCH}/{objects.PATTERN}/_search", json={"query": _lucene(query), "size": 1}, timeout=10
    ).raise_for_status()
    [hit] = response.json()["hits"]["hits"]
    return hit["_source"]


@pytest.mark.parametrize("saved", objects.SEARCHES, ids=[s[0] for s in objects.SEARCHES])
def test_every_kibana_saved_search_finds_its_records(
    logged: Logged, saved: tuple[str, str, str, str]
) -> None:
    object_id, _title, _description, query = saved
    query = query.replace(objects.ORDER_PLACEHOLDER, logged.order_id)
    [source] = [o for o in objects.build() if o["id"] == object_id]
    assert (
        json.loads(source["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["language"]
        == "lucene"
    )
    eventually(lambda: count(query) > 0)
    for column in source["attributes"]["columns"]:
        assert _mapped(column), f"{object_id} shows {column}, which no log record has"


@pytest.mark.parametrize("panel", objects.PANELS, ids=[p[0] for p in objects.PANELS])
def test_every_kibana_panel_aggregation_returns_buckets(logged: Logged, panel: tuple) -> None:
    object_id, _title, _kind, query, buckets = panel
    [saved] = [o for o in objects.build() if o["id"] == object_id]
    aggs = json.loads(saved["attributes"]["visState"])["aggs"]
    assert [(a["schema"], a["type"], a["params"]["field"]) for a in aggs[1:]] == buckets
    # The aggregation Kibana builds from the visState: nested buckets, a count in each.
    request: dict = {}
    inner = request
    for agg in aggs[1:]:
        params = agg["params"]
        body = (
            {"terms": {"field": params["field"], "size": params["size"]}}
            if agg["type"] == "terms"
            else {"date_histogram": {"field": params["field"], "fixed_interval": "1m", "min_doc_count": 1}}
        )
        inner["aggs"] = {agg["id"]: body}
        inner = body
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    filtered = {"bool": {"filter": [_lucene(query), {"range": {"@timestamp": {"gte": since}}}]}}

    def first_level() -> list[dict]:
        response = httpx.post(
            f"{ELASTICSEARCH}/{objects.PATTERN}/_search",
            json={"size": 0, "query": filtered, **request},
            timeout=10,
        ).raise_for_status()
        return response.json()["aggregations"][aggs[1]["id"]]["buckets"]

    assert eventually(first_level)
    if object_id == "otel-kit-errors-over-time":  # errors of RabbitMQ and PostgreSQL in the split

        def services() -> set[str]:
            return {s["key"] for b in first_level() for s in b[aggs[2]["id"]]["buckets"]}

        eventually(lambda: {"rabbitmq", "postgres-shop", "postgres-mes"} <= services())


def _mapped(field: str) -> bool:
    response = httpx.get(f"{ELASTICSEARCH}/{objects.PATTERN}/_mapping/field/{field}", timeout=10)
    return any(index["mappings"] for index in response.raise_for_status().json().values())


EMITTER = """
import logging, sys, time, otel_kit
otel_kit.init("log-emitter")
log = logging.getLogger("emitter")
tag, total = sys.argv[1], int(sys.argv[2])
for number in range(total):
    log.warning("record %d of run %s", number, tag)
    time.sleep(0.02)
print("done", flush=True)
"""


def test_a_restart_of_elasticsearch_loses_no_record(services: Services) -> None:
    """Records logged before, during and after Elasticsearch is down all arrive, once each."""
    tag, total = uuid.uuid4().hex[:10], 1500  # about 30 s of records
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_METRICS_EXPORTER": "none",
        "PATH": "/usr/bin:/bin",
    }
    emitter = subprocess.Popen([sys.executable, "-c", EMITTER, tag, str(total)], cwd=REPO, env=env)
    try:
        eventually(lambda: count(f'body.text:"{tag}"') > 100, timeout=30)
        subprocess.run([str(STACK), "stop", "elasticsearch"], check=True, capture_output=True)
        down_at = time.monotonic()
        assert emitter.poll() is None, "the records go on while Elasticsearch is down"
        eventually(lambda: time.monotonic() - down_at > 10 or None, timeout=20)
        subprocess.run([str(STACK), "start", "elasticsearch"], check=True, capture_output=True)
        assert emitter.wait(timeout=120) == 0
    finally:
        if emitter.poll() is None:
            emitter.kill()
        subprocess.run([str(STACK), "start", "elasticsearch"], check=True, capture_output=True)
    eventually(lambda: count(f'body.text:"{tag}"') >= total, timeout=180, interval=2)
    assert count(f'body.text:"{tag}"') == total, "each record once"


def test_retention_rolls_over_and_deletes_old_indices(stack: None) -> None:
    stream = "logs-retention-test.otel-default"  # data streams cannot be deleted here: reused each run
    document = {"@timestamp": datetime.now(UTC).isoformat(), "body": {"text": "retention test"}}
    httpx.post(f"{ELASTICSEARCH}/{stream}/_doc", json=document, timeout=10).raise_for_status()

    def backing() -> list[str]:
        resolved = httpx.get(f"{ELASTICSEARCH}/_resolve/index/{stream}", timeout=10).raise_for_status().json()
        return resolved["data_streams"][0]["backing_indices"]

    before = backing()
    assert not [line for line in retention.apply(ELASTICSEARCH, timedelta(days=7)) if stream in line], (
        "a fresh write index is neither rolled over nor deleted"
    )
    assert backing() == before
    # Past a 1 s rollover age the write index is rolled over; past a 1 s retention, every
    # index but the write index is deleted.
    rolled = eventually(
        lambda: [line for line in retention.apply(ELASTICSEARCH, timedelta(days=7), "1s") if stream in line]
    )
    assert rolled[0].startswith(f"rolled over {stream}")
    assert len(backing()) == len(before) + 1
    eventually(
        lambda: [
            line
            for line in retention.apply(ELASTICSEARCH, timedelta(seconds=1))
            if stream in line and "deleted" in line
        ]
    )
    assert backing() == backing()[-1:]


def test_a_record_with_too_many_attributes_is_kept_without_the_extra_fields(stack: None) -> None:
    """The template's field limit: a record that would add 1500 fields is indexed with the
    fields up to the limit, and the data stream keeps taking records (no mapping explosion)."""
    tag = uuid.uuid4().hex[:10]
    attributes = [{"key": f"noise.{tag}.{n}", "value": {"stringValue": "x"}} for n in range(1500)]
    record = {
        "timeUnixNano": str(time.time_ns()),
        "severityNumber": 13,
        "body": {"stringValue": f"wide record {tag}"},
        "attributes": attributes,
    }
    payload = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "wide"}}]},
                "scopeLogs": [{"scope": {"name": "tests.stack"}, "logRecords": [record]}],
            }
        ]
    }
    httpx.post("http://127.0.0.1:4318/v1/logs", json=payload, timeout=10).raise_for_status()
    eventually(lambda: count(f'body.text:"{tag}"') == 1)
    settings = (
        httpx.get(f"{ELASTICSEARCH}/logs-app.otel-default/_mapping", timeout=10).raise_for_status().json()
    )
    for mapping in settings.values():  # each backing index
        noise = mapping["mappings"]["properties"]["attributes"]["properties"].get("noise", {})
        assert len(noise.get("properties", {}).get(tag, {}).get("properties", {})) < 1000
