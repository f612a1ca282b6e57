"""Kibana saved objects for the logs: the source of otel-kit.ndjson, which compose imports.

    python deploy/kibana/objects.py     # rewrites otel-kit.ndjson

A data view over the log data streams, four saved searches and two panels on one dashboard.
Queries are Lucene syntax, which Elasticsearch runs itself (query_string): the tests run each
one, and each panel's aggregation, against the real Elasticsearch (tests/stack/test_logs.py).
Kibana cannot be installed here, so the import itself is for Docker users to see.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA_VIEW = "otel-kit-logs"
PATTERN = "logs-*.otel-*"
NDJSON = Path(__file__).with_name("otel-kit.ndjson")
ERRORS = "severity_number:>=17"
SERVICE = "resource.attributes.service.name"
COLUMNS = [SERVICE, "severity_text", "body.text", "attributes.order.id", "trace_id"]
JAEGER_TRACE = "http://localhost:16686/trace/{{value}}"
ORDER_PLACEHOLDER = "ORDER-ID"  # replaced by the user (or the test) with a real order id

# id, title, what it is for, Lucene query
SEARCHES = [
    ("otel-kit-errors", "Errors by service", "Every error record, newest first.", ERRORS),
    (
        "otel-kit-order",
        "One order's logs across services",
        f"Replace {ORDER_PLACEHOLDER} with the order id (otel-kit trace prints it).",
        f'attributes.order.id:"{ORDER_PLACEHOLDER}"',
    ),
    (
        "otel-kit-rabbitmq-errors",
        "RabbitMQ errors",
        "RabbitMQ's own log.",
        f"{SERVICE}:rabbitmq AND {ERRORS}",
    ),
    (
        "otel-kit-postgres-errors",
        "PostgreSQL errors",
        "Both instances' own logs: failed logins, syntax errors, deadlocks.",
        f"{SERVICE}:postgres-* AND {ERRORS}",
    ),
]

# id, title, Kibana visualization type, Lucene query, buckets (Kibana schema, aggregation, field)
PANELS = [
    ("otel-kit-errors-over-time", "Errors per service over time", "histogram", ERRORS,
     [("segment", "date_histogram", "@timestamp"), ("group", "terms", SERVICE)]),
    ("otel-kit-records-by-level", "Records by service and level", "table", "*",
     [("bucket", "terms", SERVICE), ("bucket", "terms", "severity_text")]),
]  # fmt: skip


def _source(query: str) -> dict[str, Any]:
    search_source = {
        "query": {"query": query, "language": "lucene"},
        "filter": [],
        "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
    }
    return {"searchSourceJSON": json.dumps(search_source)}


_INDEX_REF = [
    {"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": DATA_VIEW}
]


def _aggs(buckets: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    aggs: list[dict[str, Any]] = [
        {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}
    ]
    for number, (schema, kind, field) in enumerate(buckets, start=2):
        params: dict[str, Any] = {"field": field}
        if kind == "terms":
            params |= {"size": 10, "order": "desc", "orderBy": "1"}
        else:
            params |= {"interval": "auto", "min_doc_count": 1}
        aggs.append({"id": str(number), "enabled": True, "type": kind, "schema": schema, "params": params})
    return aggs


def build() -> list[dict[str, Any]]:
    """Every saved object, in import order (the data view first)."""
    objects: list[dict[str, Any]] = [
        {
            "type": "index-pattern",
            "id": DATA_VIEW,
            "attributes": {
                "title": PATTERN,
                "name": "otel-kit logs",
                "timeFieldName": "@timestamp",
                # A record's trace id opens the trace in Jaeger (compose publishes it on 16686).
                "fieldFormatMap": json.dumps(
                    {"trace_id": {"id": "url", "params": {"urlTemplate": JAEGER_TRACE}}}
                ),
            },
            "references": [],
        }
    ]
    for object_id, title, description, query in SEARCHES:
        objects.append(
            {
                "type": "search",
                "id": object_id,
                "attributes": {
                    "title": f"otel-kit: {title}",
                    "description": description,
                    "columns": COLUMNS,
                    "sort": [["@timestamp", "desc"]],
                    "kibanaSavedObjectMeta": _source(query),
                },
                "references": _INDEX_REF,
            }
        )
    for object_id, title, kind, query, buckets in PANELS:
        vis_state = {"title": title, "type": kind, "params": {}, "aggs": _aggs(buckets)}
        objects.append(
            {
                "type": "visualization",
                "id": object_id,
                "attributes": {
                    "title": f"otel-kit: {title}",
                    "visState": json.dumps(vis_state),
                    "uiStateJSON": "{}",
                    "description": "",
                    "kibanaSavedObjectMeta": _source(query),
                },
                "references": _INDEX_REF,
            }
        )
    shown = [(p[0], "visualization") for p in PANELS] + [
        (s[0], "search") for s in SEARCHES if s[0] != "otel-kit-order"
    ]
    panels, references = [], []
    for number, (object_id, kind) in enumerate(shown):
        ref = f"panel_{number}"
        grid = {"x": 24 * (number % 2), "y": 15 * (number // 2), "w": 24, "h": 15, "i": str(number)}
        panels.append(
            {"panelIndex": str(number), "gridData": grid, "panelRefName": ref, "embeddableConfig": {}}
        )
        references.append({"name": ref, "type": kind, "id": object_id})
    objects.append(
        {
            "type": "dashboard",
            "id": "otel-kit-logs-dashboard",
            "attributes": {
                "title": "otel-kit: logs",
                "description": "Errors of the services, RabbitMQ and PostgreSQL; records by level.",
                "panelsJSON": json.dumps(panels),
                "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
                "timeRestore": True,
                "timeFrom": "now-1h",
                "timeTo": "now",
                "kibanaSavedObjectMeta": {
                    "searchSourceJSON": json.dumps(
                        {"query": {"query": "", "language": "lucene"}, "filter": []}
                    )
                },
            },
            "references": references,
        }
    )
    return objects


def render() -> str:
    return "".join(json.dumps(item, sort_keys=True) + "\n" for item in build())


if __name__ == "__main__":
    NDJSON.write_text(render())
    print(f"wrote {NDJSON}")
