"""Log records in Elasticsearch, as the collector writes them: search for people and for verdicts.

The collector's elasticsearch exporter writes OTel-native documents (deploy/elasticsearch/
index-template.json maps them): body.text, severity_number, trace_id, span_id,
attributes.order.id, resource.attributes.service.name, in the logs-*.otel-* data streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

INDEX = "logs-*.otel-*"
# OTel severity numbers where each level starts (the log data model).
SEVERITIES = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}


class LogStoreUnreachable(Exception):
    """Elasticsearch did not answer, or refused the search."""


@dataclass(frozen=True)
class LogLine:
    """One log record, flattened for people and scripts."""

    time: str  # ISO 8601, UTC
    service: str
    severity: str
    message: str
    severity_number: int = 0  # OTel's 1-24; 17 and up are errors
    trace_id: str | None = None
    span_id: str | None = None
    order_id: str | None = None


@dataclass(frozen=True)
class LogQuery:
    """What to look for; every given criterion must hold."""

    order_id: str | None = None
    trace_ids: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    min_severity: str | None = None  # a key of SEVERITIES
    text: str | None = None  # words of the message (full-text match, all of them)
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    # Records of the order or of one of the traces (what `otel-kit trace` asks for), instead
    # of records matching both.
    order_or_traces: bool = False

    def to_elasticsearch(self) -> dict[str, Any]:
        """The search body: filters, newest first (the caller shows them oldest first)."""
        filters: list[dict[str, Any]] = []
        by_order = {"term": {"attributes.order.id": self.order_id}} if self.order_id else None
        by_trace = {"terms": {"trace_id": list(self.trace_ids)}} if self.trace_ids else None
        if self.order_or_traces and by_order and by_trace:
            filters.append({"bool": {"should": [by_order, by_trace], "minimum_should_match": 1}})
        else:
            filters += [f for f in (by_order, by_trace) if f]
        if self.services:
            filters.append({"terms": {"resource.attributes.service.name": list(self.services)}})
        if self.min_severity:
            filters.append({"range": {"severity_number": {"gte": SEVERITIES[self.min_severity]}}})
        if self.since or self.until:
            bounds = {"gte": self.since, "lte": self.until}
            iso = {k: v.astimezone(UTC).isoformat() for k, v in bounds.items() if v is not None}
            filters.append({"range": {"@timestamp": iso}})
        must = [{"match": {"body.text": {"query": self.text, "operator": "and"}}}] if self.text else []
        return {
            "size": self.limit,
            "sort": [{"@timestamp": {"order": "desc", "format": "strict_date_optional_time_nanos"}}],
            "query": {"bool": {"filter": filters, "must": must}},
            "_source": [
                "body.text",
                "severity_text",
                "severity_number",
                "trace_id",
                "span_id",
                "attributes.order.id",
                "resource.attributes.service.name",
            ],
        }


class LogStore:
    """Elasticsearch's search API over the log data streams."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout)

    def search(self, query: LogQuery) -> list[LogLine]:
        """Matching records, oldest first (the newest `query.limit` of them)."""
        try:
            response = self._client.post(
                f"/{INDEX}/_search", params={"ignore_unavailable": "true"}, json=query.to_elasticsearch()
            )
        except httpx.HTTPError as error:
            raise LogStoreUnreachable(f"Elasticsearch at {self.url} did not answer: {error}") from None
        if response.status_code != 200:
            raise LogStoreUnreachable(
                f"Elasticsearch at {self.url} answered {response.status_code}: {response.text[:500]}"
            )
        return [_line(hit) for hit in reversed(response.json()["hits"]["hits"])]


def _line(hit: dict[str, Any]) -> LogLine:
    source = hit["_source"]
    attributes, resource = source.get("attributes", {}), source.get("resource", {}).get("attributes", {})
    body = source.get("body", {})
    number = source.get("severity_number")
    return LogLine(
        time=hit["sort"][0],
        service=str(resource.get("service.name", "?")),
        severity=str(source.get("severity_text") or _level(number)).upper(),
        message=str(body.get("text", "")) if isinstance(body, dict) else str(body),
        severity_number=int(number or 0),
        trace_id=source.get("trace_id") or None,
        span_id=source.get("span_id") or None,
        order_id=attributes.get("order.id"),
    )


def _level(number: int | None) -> str:
    if not number:
        return "unset"
    return max((start, name) for name, start in SEVERITIES.items() if start <= number)[1]
