"""The query service of the local stack (:9095) over the stack's Prometheus: popular questions
answered from the recording rules, and range queries whose settled part equals Prometheus's."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.stack.conftest import Services
from tests.stack_fixtures import PROMETHEUS, eventually

pytestmark = pytest.mark.timeout(300)
SERVICE = "http://127.0.0.1:9095"
CRM_ROUTE = "/customers/{user}/orders"


@pytest.fixture(scope="module")
def flowed(services: Services) -> Services:
    with httpx.Client(base_url=services.shop, timeout=10) as client:
        for n in range(20):
            order = {"id": f"qs-{uuid.uuid4().hex[:6]}-{n}", "user": "u-qs", "crm_fails": n % 5 == 0}
            assert client.post("/orders", json=order).status_code == 201
    return services


def get(path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{SERVICE}{path}", params=params, timeout=30)


def test_red_per_route_from_the_recording_rules(flowed: Services) -> None:
    def crm_route() -> dict | None:
        if "crm" not in get("/v1/services").json()["services"]:
            return None
        routes = get("/v1/services/crm/red").json()["routes"]
        found = [r for r in routes if r["route"] == CRM_ROUTE and r["requests_per_second"] > 0]
        # Once the CRM's 500s are counted too (the rules lag the spans by a scrape or two).
        return found[0] if found and found[0]["p99_ms"] is not None and found[0]["error_ratio"] else None

    route = eventually(crm_route, timeout=120, interval=2)
    assert route["method"] == "POST"
    assert 0 < route["error_ratio"] < 1, "a fifth of the orders ask the CRM to fail"
    assert route["p50_ms"] <= route["p95_ms"] <= route["p99_ms"]


def test_an_unknown_service_is_a_404_naming_the_known_ones(flowed: Services) -> None:
    eventually(lambda: "crm" in get("/v1/services").json()["services"], timeout=120, interval=2)
    response = get("/v1/services/no-such-service/red")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "no service 'no-such-service'" in detail
    assert "crm" in detail


def test_funnel_alerts_and_queues(flowed: Services) -> None:
    funnel = eventually(
        lambda: (f := get("/v1/orders/funnel").json())["placed"] > 0 and f, timeout=120, interval=2
    )
    assert set(funnel) == {"placed", "registered", "completed", "dead_lettered", "in_flight"}
    assert any(a["alertname"] == "Watchdog" for a in get("/v1/alerts").json())
    queues = eventually(
        lambda: [q for q in get("/v1/queues").json() if q["queue"] == flowed.queue], timeout=120, interval=2
    )
    assert queues[0]["consumers"] >= 1


def test_a_live_range_is_prometheus_s_answer_with_the_fresh_tail_fetched(flowed: Services) -> None:
    """Up to now: the settled points are Prometheus's, the newest ones at most a scrape behind."""
    query = "sum by (job) (up)"
    caches = []
    for _ in range(3):  # cold, then with what the first answers stored
        now = time.time()
        start = int(now - 900) // 10 * 10  # on one grid each time: the same cache key
        params = {"query": query, "start": str(start), "end": f"{now:.3f}", "step": "10"}
        served = get("/api/v1/query_range", **params)
        direct = httpx.get(f"{PROMETHEUS}/api/v1/query_range", params=params, timeout=30)
        assert served.status_code == 200, served.text
        mine, theirs = (_points(r.json()) for r in (served, direct))
        assert mine.keys() == theirs.keys()
        for job, points in theirs.items():
            settled = {t: v for t, v in points.items() if t <= now - 60}
            assert {t: v for t, v in mine[job].items() if t <= now - 60} == settled, job
            assert max(mine[job]) >= max(points) - 15, f"{job}: the newest point is fetched, not cached"
        caches.append(served.headers["x-cache"])
    # Later answers take the settled part from the cache, and the fresh tail from Prometheus or
    # from the one fetched a moment ago (OTEL_KIT_QUERY_TAIL_SHARE).
    assert caches[0] in ("miss", "partial")
    assert set(caches[1:]) <= {"partial", "hit"}, caches


def _points(answer: dict) -> dict[str, dict[float, str]]:
    return {
        s["metric"].get("job", ""): {float(t): v for t, v in s["values"]} for s in answer["data"]["result"]
    }


def test_databases_and_s3(flowed: Services) -> None:
    databases = eventually(lambda: get("/v1/databases").json(), timeout=120, interval=2)
    assert {d["database"] for d in databases} == {"shop", "mes"}
    for database in databases:
        assert database["connections"] >= 1, database
        assert database["size_bytes"] > 0, database
    assert isinstance(get("/v1/s3").json(), list)


def test_the_stack_s_label_proxy_limits_a_team_to_its_services(flowed: Services) -> None:
    """prom-label-proxy (:9096), as the query service asks it for a key with `services`."""
    proxy = "http://127.0.0.1:9096"
    team = {"X-Otel-Kit-Services": "crm"}
    match = {"match[]": "traces_span_metrics_calls_total"}
    series = eventually(
        lambda: httpx.get(f"{proxy}/api/v1/series", params=match, headers=team, timeout=30).json()["data"],
        timeout=120,
        interval=2,
    )
    assert {s["service_name"] for s in series} == {"crm"}
    other = httpx.get(f"{proxy}/api/v1/query", params={"query": 'up{service_name="shop"}'}, headers=team)
    assert other.status_code == 400
    assert "conflicting label matcher" in other.json()["error"]
