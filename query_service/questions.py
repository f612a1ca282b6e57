"""Popular questions as plain REST, answered from the recording rules (deploy/prometheus/rules/).

Each answer is one or a few instant queries of series Prometheus already computes every 10 s,
so a dashboard or a script asking every few seconds costs Prometheus no aggregation.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from query_service.access import services_of

router = APIRouter(prefix="/v1", tags=["popular questions"])


class RouteRed(BaseModel):
    route: str
    method: str
    requests_per_second: float = Field(description="Requests answered per second, over the last 5 minutes.")
    error_ratio: float | None = Field(description="Share of them answered 5xx; null when it served none.")
    p50_ms: float | None = Field(description="Median latency (ms); null without requests.")
    p95_ms: float | None
    p99_ms: float | None


class ServiceRed(BaseModel):
    service: str
    window: str = "5m"
    routes: list[RouteRed]


class Funnel(BaseModel):
    placed: float = Field(description="Orders placed since the counters started (shop POST /orders 201).")
    registered: float = Field(description="Orders the CRM registered.")
    completed: float = Field(description="Orders whose final status the shop received.")
    dead_lettered: float = Field(description="Orders given up and dead-lettered.")
    in_flight: float = Field(description="Placed and neither completed nor dead-lettered: moving or lost.")


class Alert(BaseModel):
    alertname: str
    severity: str | None
    team: str | None
    summary: str | None
    active_since: str
    labels: dict[str, str]


class Queue(BaseModel):
    queue: str
    vhost: str
    ready: float = Field(description="Messages waiting for a consumer.")
    unacknowledged: float = Field(description="Messages delivered and not yet acknowledged (in flight).")
    consumers: float


async def _instant(request: Request, query: str) -> list[dict[str, Any]]:
    service = request.app.state.service
    response = await service.prometheus("query", "GET", [("query", query)], services_of(request))
    answer = response.json()
    if response.status_code != 200 or answer.get("status") != "success":
        raise HTTPException(
            502, f"Prometheus answered {response.status_code} to {query!r}: {answer.get('error')}"
        )
    return answer["data"]["result"]


def _value(sample: dict[str, Any]) -> float | None:
    value = float(sample["value"][1])
    return None if math.isnan(value) else value


@router.get("/services", summary="The services that answered requests in the last 5 minutes")
async def services(request: Request) -> dict[str, list[str]]:
    found = await _instant(request, "count by (service_name) (service_route:http_server_requests:rate5m)")
    return {"services": sorted(s["metric"]["service_name"] for s in found)}


@router.get("/services/{service}/red", summary="Rate, errors and latency of each of a service's routes")
async def service_red(service: str, request: Request) -> ServiceRed:
    known = (await services(request))["services"]
    if service not in known:
        they = ", ".join(known) or "none"
        raise HTTPException(
            404, f"no service {service!r} answered requests in the last 5 minutes; they are: {they}"
        )
    selector = f'{{service_name="{service}"}}'
    rates = await _instant(request, f"service_route:http_server_requests:rate5m{selector}")
    errors = await _instant(request, f"service_route:http_server_5xx:ratio_rate5m{selector}")
    buckets = f"service_route:http_server_duration_milliseconds_bucket:rate5m{selector}"
    quantiles = {q: await _instant(request, f"histogram_quantile({q}, {buckets})") for q in (0.5, 0.95, 0.99)}

    def by_route(samples: list[dict[str, Any]]) -> dict[tuple[str, str], float | None]:
        return {
            (s["metric"].get("http_route", ""), s["metric"].get("http_request_method", "")): _value(s)
            for s in samples
        }

    error_of, quantile_of = by_route(errors), {q: by_route(found) for q, found in quantiles.items()}
    routes = []
    for (route, method), rate in sorted(by_route(rates).items()):
        key = (route, method)
        routes.append(
            RouteRed(
                route=route,
                method=method,
                requests_per_second=rate or 0.0,
                error_ratio=error_of.get(key),
                p50_ms=quantile_of[0.5].get(key),
                p95_ms=quantile_of[0.95].get(key),
                p99_ms=quantile_of[0.99].get(key),
            )
        )
    return ServiceRed(service=service, routes=routes)


@router.get(
    "/orders/funnel", summary="The order funnel: placed, registered, completed, dead-lettered, in flight"
)
async def funnel(request: Request) -> Funnel:
    steps = {
        s["metric"]["step"]: _value(s) or 0.0 for s in await _instant(request, "order_funnel:orders:total")
    }
    in_flight = await _instant(request, "order_funnel:orders_in_flight")
    return Funnel(
        placed=steps.get("placed", 0.0),
        registered=steps.get("registered", 0.0),
        completed=steps.get("completed", 0.0),
        dead_lettered=steps.get("dead_lettered", 0.0),
        in_flight=(_value(in_flight[0]) or 0.0) if in_flight else 0.0,
    )


@router.get("/alerts", summary="What is firing now")
async def alerts(request: Request) -> list[Alert]:
    service = request.app.state.service
    response = await service.prometheus("alerts", "GET", [], services_of(request))
    firing = [a for a in response.json()["data"]["alerts"] if a["state"] == "firing"]
    return [
        Alert(
            alertname=a["labels"].get("alertname", ""),
            severity=a["labels"].get("severity"),
            team=a["labels"].get("team"),
            summary=a.get("annotations", {}).get("summary"),
            active_since=a["activeAt"],
            labels=a["labels"],
        )
        for a in firing
    ]


@router.get("/queues", summary="Each RabbitMQ queue: ready, unacknowledged, consumers")
async def queues(request: Request) -> list[Queue]:
    figures = {}
    for name, metric in (
        ("ready", "rabbitmq_detailed_queue_messages_ready"),
        ("unacknowledged", "rabbitmq_detailed_queue_messages_unacked"),
        ("consumers", "rabbitmq_detailed_queue_consumers"),
    ):
        for sample in await _instant(request, f"sum by (vhost, queue) ({metric})"):
            key = (sample["metric"].get("vhost", ""), sample["metric"].get("queue", ""))
            figures.setdefault(key, {})[name] = _value(sample) or 0.0
    return [
        Queue(
            vhost=vhost,
            queue=queue,
            **{k: found.get(k, 0.0) for k in ("ready", "unacknowledged", "consumers")},
        )
        for (vhost, queue), found in sorted(figures.items())
    ]


class Database(BaseModel):
    database: str = Field(description="The instance (shop, mes).")
    connections: float = Field(description="Open sessions (pg_stat_database.numbackends).")
    size_bytes: float
    locks_held: float
    longest_lock_wait_seconds: float = Field(description="The longest a session has waited for a lock now.")
    deadlocks_per_second: float = Field(description="Deadlocks per second, over the last 5 minutes.")


class Bucket(BaseModel):
    bucket: str
    size_bytes: float = Field(description="MinIO's usage scanner's figure: minutes behind.")
    objects: float
    requests_per_second: float
    errors_per_second: float = Field(description="4xx and 5xx answers per second, over the last 5 minutes.")


async def _by(request: Request, label: str, queries: dict[str, str]) -> dict[str, dict[str, float]]:
    """Each query's value per value of `label`, missing ones left out."""
    figures: dict[str, dict[str, float]] = {}
    for name, query in queries.items():
        for sample in await _instant(request, query):
            figures.setdefault(sample["metric"].get(label, ""), {})[name] = _value(sample) or 0.0
    return figures


@router.get("/databases", summary="Each PostgreSQL instance: connections, size, locks, deadlocks")
async def databases(request: Request) -> list[Database]:
    selector = '{datname=~"shop|mes"}'
    figures = await _by(
        request,
        "database",
        {
            "connections": f"sum by (database) (pg_stat_database_numbackends{selector})",
            "size_bytes": f"sum by (database) (pg_database_size_bytes{selector})",
            "locks_held": f"sum by (database) (pg_locks_count{selector})",
            "longest_lock_wait_seconds": "max by (database) (pg_lock_waits_max_seconds)",
            "deadlocks_per_second": f"sum by (database) (rate(pg_stat_database_deadlocks{selector}[5m]))",
        },
    )
    fields = ("connections", "size_bytes", "locks_held", "longest_lock_wait_seconds", "deadlocks_per_second")
    return [
        Database(database=name, **{f: found.get(f, 0.0) for f in fields})
        for name, found in sorted(figures.items())
        if "connections" in found
    ]


@router.get("/s3", summary="Each S3 bucket: size, objects, requests and errors")
async def s3(request: Request) -> list[Bucket]:
    figures = await _by(
        request,
        "bucket",
        {
            "size_bytes": "sum by (bucket) (minio_bucket_usage_total_bytes)",
            "objects": "sum by (bucket) (minio_bucket_usage_object_total)",
            "requests_per_second": "sum by (bucket) (rate(minio_bucket_requests_total[5m]))",
            # Apart: a sum of the two is empty while one of them has no series yet.
            "4xx": "sum by (bucket) (rate(minio_bucket_requests_4xx_errors_total[5m]))",
            "5xx": "sum by (bucket) (rate(minio_bucket_requests_5xx_errors_total[5m]))",
        },
    )
    return [
        Bucket(
            bucket=name,
            size_bytes=found.get("size_bytes", 0.0),
            objects=found.get("objects", 0.0),
            requests_per_second=found.get("requests_per_second", 0.0),
            errors_per_second=found.get("4xx", 0.0) + found.get("5xx", 0.0),
        )
        for name, found in sorted(figures.items())
    ]
