"""Jaeger v2 with its traces in Elasticsearch (deploy/jaeger/config-elasticsearch.yaml), the
production storage: spans stored, found by order id, and otel-kit trace's verdict over them."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mirakuru import HTTPExecutor

from tests.integration.servers import free_port
from tests.stack_fixtures import REPO, eventually
from tests.unit.test_cli import CLI

PORTS = (":4327", ":4328", ":16686", ":16685", "port: 14269", ":14133")


@pytest.fixture(scope="module")
def jaeger_on_elasticsearch(
    stack: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The committed config on free ports (the stack's own Jaeger holds the usual ones)."""
    binary = subprocess.run(
        ["bash", str(REPO / "deploy/local/build-go.sh"), "jaeger"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    config = (REPO / "deploy/jaeger/config-elasticsearch.yaml").read_text()
    ports = {}
    for marker in PORTS:
        assert marker in config, f"config-elasticsearch.yaml no longer has {marker}"
        ports[marker] = free_port()
        prefix = "port: " if marker.startswith("port: ") else ":"
        config = config.replace(marker, f"{prefix}{ports[marker]}")
    folder = tmp_path_factory.mktemp("jaeger-es")
    path = Path(folder / "config.yaml")
    path.write_text(config)
    query = f"http://127.0.0.1:{ports[':16686']}"
    executor = HTTPExecutor(
        [binary, "--config", str(path)],
        url=f"{query}/api/services",
        method="GET",
        timeout=60,
        stdout=(folder / "jaeger.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    with executor:
        yield {"query": query, "otlp": f"http://127.0.0.1:{ports[':4328']}"}


def test_traces_stored_in_elasticsearch_are_found_by_order_and_given_a_verdict(
    jaeger_on_elasticsearch: dict[str, str],
) -> None:
    order_id, trace_id = f"es-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    now = time.time_ns()

    def span(span_id: str, service_parent: str | None, name: str, kind: int) -> dict:
        return {
            "traceId": trace_id,
            "spanId": span_id,
            **({"parentSpanId": service_parent} if service_parent else {}),
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(now),
            "endTimeUnixNano": str(now + 2_000_000),
            "attributes": [{"key": "order.id", "value": {"stringValue": order_id}}],
        }

    def resource(service: str, *spans: dict) -> dict:
        attributes = [{"key": "service.name", "value": {"stringValue": service}}]
        return {"resource": {"attributes": attributes}, "scopeSpans": [{"spans": list(spans)}]}

    payload = {
        "resourceSpans": [
            resource(
                "shop", span("a" * 16, None, "POST /orders", 2), span("b" * 16, "a" * 16, "orders send", 4)
            ),
        ]
    }
    otlp = jaeger_on_elasticsearch["otlp"]
    httpx.post(f"{otlp}/v1/traces", json=payload, timeout=10).raise_for_status()
    query = jaeger_on_elasticsearch["query"]
    tags = json.dumps({"order.id": order_id})
    found = eventually(
        lambda: httpx.get(f"{query}/api/traces", params={"service": "shop", "tags": tags}, timeout=10).json()[
            "data"
        ]
    )
    assert [t["traceID"] for t in found] == [trace_id]
    indices = httpx.get(
        "http://127.0.0.1:9200/_cat/indices/jaeger-span-*", params={"format": "json"}, timeout=10
    )
    assert indices.raise_for_status().json(), "the spans are in Jaeger's daily span indices"
    result = subprocess.run(
        [CLI, "trace", order_id, "--jaeger", query, "--json"], capture_output=True, text=True, check=False
    )
    verdict = json.loads(result.stdout)
    assert (result.returncode, verdict["outcome"], verdict["step"]) == (3, "stuck", "orders send"), verdict
