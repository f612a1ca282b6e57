"""The query service in front of a real Prometheus holding two days of deterministic data:
every answer is the bytes Prometheus sends for the same request, cold, warm and as the window
slides across extents and a day boundary, for aligned and unaligned starts; errors and what
is never cached pass through; identical concurrent requests cost one Prometheus query."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import hypothesis
import pytest
import schemathesis
from mirakuru import HTTPExecutor, TCPExecutor

from tests.integration.servers import free_port
from tests.stack_fixtures import REPO, start_app

DAY = 86_400
SERVICES, ROUTES = ("crm", "mes", "shop"), ("/orders", "/customers/{id}", "/a<b>&c")


@dataclass
class Endpoints:
    prometheus: str
    service: str
    base: int  # midnight two days ago: the data covers base .. base + 2 days, every 15 s


def _openmetrics(base: int) -> str:
    """Counters and a gauge for 3 services x 3 routes, every 15 s, each growing at its own rate."""
    lines = ["# TYPE requests counter", "# TYPE in_flight gauge"]
    rows = []
    for s, service in enumerate(SERVICES):
        for r, route in enumerate(ROUTES):
            labels = f'service="{service}",route="{route}"'
            for n, t in enumerate(range(base, base + 2 * DAY, 15)):
                rows.append((t, 0, f"requests_total{{{labels}}} {n * (s + r + 1)} {t}"))
                rows.append((t, 1, f"in_flight{{{labels}}} {(n * 7 + s) % 11} {t}"))
    rows.sort()
    return (
        "\n".join(
            [
                lines[0],
                *(r for _, k, r in rows if k == 0),
                lines[1],
                *(r for _, k, r in rows if k == 1),
                "# EOF",
            ]
        )
        + "\n"
    )


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    folder = tmp_path_factory.mktemp("query-service")
    base = (int(time.time()) // DAY - 2) * DAY
    (folder / "data.om").write_text(_openmetrics(base))
    subprocess.run(
        [
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(folder / "data.om"),
            str(folder / "tsdb"),
        ],
        check=True,
        capture_output=True,
    )
    (folder / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
    prometheus_port, service_port = free_port(), free_port()
    prometheus = HTTPExecutor(
        [
            "/usr/bin/prometheus",
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            "--storage.tsdb.retention.time=30d",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        url=f"http://127.0.0.1:{prometheus_port}/-/ready",
        timeout=60,
        stdout=(folder / "prometheus.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    prometheus_url = f"http://127.0.0.1:{prometheus_port}"
    with prometheus, _query_service(prometheus_url, service_port, folder / "service.log"):
        yield Endpoints(prometheus_url, f"http://127.0.0.1:{service_port}", base)


@contextlib.contextmanager
def _query_service(prometheus: str, port: int, log: Path, **settings: str) -> Iterator[HTTPExecutor]:
    """`uvicorn query_service.app:app`, as the local stack runs it, on `port`, while in `with`."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_KIT_QUERY_PROMETHEUS_URL": prometheus,
        "OTEL_KIT_QUERY_PROMETHEUS_RETENTION": "30d",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        **settings,
    }
    executor = start_app("query_service.app:app", port, env, log)
    try:
        yield executor
    finally:
        executor.stop()


QUERIES = [
    "requests_total",
    'sum by (service) (rate(requests_total{route!="/orders"}[5m]))',
    "histogram_quantile(0.9, sum by (le) (rate(requests_total[1m])))",  # no buckets: empty series
    "avg_over_time(in_flight[10m]) > 4",
    'in_flight{service="shop"} offset 1h',
    "max_over_time(in_flight[30m:1m])",  # a subquery: its steps are absolute, not from start
]


def both(endpoints: Endpoints, method: str = "GET", **params: str) -> tuple[httpx.Response, httpx.Response]:
    """The same request to Prometheus and through the service."""
    call = httpx.get if method == "GET" else httpx.post
    options = {"params": params} if method == "GET" else {"data": params}
    direct = call(f"{endpoints.prometheus}/api/v1/query_range", timeout=30, **options)
    served = call(f"{endpoints.service}/api/v1/query_range", timeout=30, **options)
    return direct, served


def same(direct: httpx.Response, served: httpx.Response) -> str:
    assert served.status_code == direct.status_code, served.text
    assert served.content == direct.content
    return served.headers["x-cache"]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("offset", [0, 7.5], ids=["aligned", "unaligned"])
def test_answers_are_prometheus_bytes_cold_warm_and_sliding_across_a_day(
    endpoints: Endpoints, query: str, offset: float
) -> None:
    step = 60
    start = endpoints.base + DAY - 6 * 3600 + offset  # six hours before midnight ...
    first = same(*both(endpoints, query=query, start=str(start), end=str(start + 6 * 3600), step=str(step)))
    assert first == "miss"
    again = same(*both(endpoints, query=query, start=str(start), end=str(start + 6 * 3600), step=str(step)))
    assert again == "hit"
    # ... then the window slides 25 minutes at a time across midnight, as a dashboard's does.
    statuses = []
    for slide in range(1, 20):
        moved = start + slide * 1500
        statuses.append(
            same(*both(endpoints, query=query, start=str(moved), end=str(moved + 6 * 3600), step=str(step)))
        )
    assert set(statuses) == {"partial"}, "each slide asks Prometheus only for the new part"
    # A range inside what is cached, ending off the grid, and one reaching before it.
    inner = start + 3 * 1500
    assert (
        same(*both(endpoints, query=query, start=str(inner), end=str(inner + 3600 + 17), step=str(step)))
        == "hit"
    )
    assert (
        same(*both(endpoints, query=query, start=str(start - 1800), end=str(start + 60), step=str(step)))
        == "partial"
    )


def test_a_client_timeout_is_kept_and_answered_from_the_cache(endpoints: Endpoints) -> None:
    params = {
        "query": "sum(in_flight)",
        "start": str(endpoints.base + 7000),
        "end": str(endpoints.base + 9000),
    }
    assert same(*both(endpoints, **params, step="30", timeout="30s")) == "miss"
    assert same(*both(endpoints, **params, step="30", timeout="5m")) == "hit"


def test_post_rfc3339_times_and_duration_steps_are_answered_alike(endpoints: Endpoints) -> None:
    start = time.strftime("%Y-%m-%dT%H:%M:%S.250Z", time.gmtime(endpoints.base + 5000))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(endpoints.base + 9000))
    for method in ("GET", "POST"):
        status = same(
            *both(endpoints, method, query="sum(requests_total)", start=start, end=end, step="1m30s")
        )
        assert status in ("miss", "hit")


@pytest.mark.parametrize(
    "params",
    [
        {"query": "sum(rate(requests_total[5m]", "start": "1", "end": "2", "step": "1"},  # parse error
        {"query": "requests_total", "start": "10", "end": "20", "step": "0"},
        {"query": "requests_total", "start": "20", "end": "10", "step": "1"},
        {"query": "requests_total", "start": "1", "end": "20000000", "step": "1"},  # too many points
        {"query": "requests_total", "start": "yesterday", "end": "20", "step": "1"},
        {"query": "requests_total", "start": "10", "end": "20"},
        {"query": "requests_total", "start": "10", "end": "20", "step": "1", "timeout": "soon"},
        {"start": "10", "end": "20", "step": "1"},
    ],
)
def test_errors_pass_through_with_prometheus_s_status_and_bytes(endpoints: Endpoints, params: dict) -> None:
    assert same(*both(endpoints, **params)) == "bypass"


@pytest.mark.parametrize(
    "query",
    [
        "in_flight @ end()",
        "in_flight @ start()",
        f"in_flight @ {int(time.time()) - DAY}",
        "in_flight offset -5m",
    ],
)
def test_queries_that_read_past_their_own_time_are_never_cached(endpoints: Endpoints, query: str) -> None:
    start = endpoints.base + 3600
    for _ in range(2):
        assert (
            same(*both(endpoints, query=query, start=str(start), end=str(start + 3600), step="60"))
            == "bypass"
        )


def _upstream_range_queries(endpoints: Endpoints) -> float:
    text = httpx.get(f"{endpoints.service}/metrics", timeout=10).text
    match = re.search(
        r'query_service_prometheus_query_duration_seconds_count\{endpoint="query_range"\} ([0-9.e+]+)', text
    )
    return float(match[1]) if match else 0.0


def test_identical_concurrent_requests_cost_one_prometheus_query(endpoints: Endpoints) -> None:
    params = {
        "query": 'sum(in_flight{route="/orders"})',
        "start": str(endpoints.base + 40_000),
        "end": str(endpoints.base + 60_000),
        "step": "20",
    }
    before = _upstream_range_queries(endpoints)
    with ThreadPoolExecutor(10) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.get(f"{endpoints.service}/api/v1/query_range", params=params, timeout=30),
                range(10),
            )
        )
    direct = httpx.get(f"{endpoints.prometheus}/api/v1/query_range", params=params, timeout=30)
    assert {a.content for a in answers} == {direct.content}
    assert _upstream_range_queries(endpoints) - before == 1


def test_dashboards_refreshing_one_panel_share_its_fresh_tail(endpoints: Endpoints) -> None:
    """Five dashboards on one panel, each refreshing at its own moment: the first asks Prometheus
    for the settled part and the fresh tail, the others find both in the service."""
    step = 15
    # The ends below are in the past, and their last point is fresh (OTEL_KIT_QUERY_FRESHNESS, 1m).
    grid_point = (int(time.time()) - 5) // step * step
    # The data ended at midnight; `or vector(0)` gives the fresh points values all the same.
    query = "sum(in_flight) or vector(0)"

    def ask(end: int) -> str:
        params = {"query": query, "start": str(grid_point - 3 * 3600), "end": str(end), "step": str(step)}
        return same(*both(endpoints, **params))

    before = _upstream_range_queries(endpoints)
    assert ask(grid_point + 1) == "miss"
    first = _upstream_range_queries(endpoints) - before
    assert [ask(grid_point + k) for k in (2, 3, 4, 5)] == ["hit"] * 4
    assert _upstream_range_queries(endpoints) - before == first


def test_passed_through_apis_answer_as_prometheus_and_admin_is_not_served(endpoints: Endpoints) -> None:
    for path, params in [
        ("query", {"query": "sum(requests_total)", "time": str(endpoints.base + DAY)}),
        ("series", {"match[]": "in_flight", "start": str(endpoints.base), "end": str(endpoints.base + 100)}),
        ("labels", {}),
        ("label/service/values", {}),
        ("query", {"query": "sum("}),
    ]:
        direct = httpx.get(f"{endpoints.prometheus}/api/v1/{path}", params=params, timeout=10)
        served = httpx.get(f"{endpoints.service}/api/v1/{path}", params=params, timeout=10)
        assert (served.status_code, served.content) == (direct.status_code, direct.content), path
        assert served.headers["x-cache"] == "bypass"
    assert (
        httpx.post(
            f"{endpoints.service}/api/v1/admin/tsdb/delete_series", params={"match[]": "in_flight"}
        ).status_code
        == 404
    )


def test_two_replicas_sharing_redis_serve_each_other_s_extents_and_survive_its_loss(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    redis_port, ports = free_port(), (free_port(), free_port())
    redis = TCPExecutor(
        [
            "/usr/bin/redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        host="127.0.0.1",
        port=redis_port,
        timeout=30,
    )
    url = f"redis://127.0.0.1:{redis_port}/0"
    replicas = [
        _query_service(endpoints.prometheus, p, tmp_path / f"replica-{p}.log", OTEL_KIT_QUERY_REDIS_URL=url)
        for p in ports
    ]
    params = {
        "query": "sum by (route) (rate(requests_total[2m]))",
        "start": str(endpoints.base + 1000),
        "end": str(endpoints.base + 30_000),
        "step": "45",
    }
    direct = httpx.get(f"{endpoints.prometheus}/api/v1/query_range", params=params, timeout=30)
    with redis, replicas[0], replicas[1]:
        first, second = (
            httpx.get(f"http://127.0.0.1:{p}/api/v1/query_range", params=params, timeout=30) for p in ports
        )
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
        assert first.content == second.content == direct.content
        redis.stop()  # the cache gone: answers still come, from Prometheus
        third = httpx.get(f"http://127.0.0.1:{ports[1]}/api/v1/query_range", params=params, timeout=30)
        assert (third.status_code, third.headers["x-cache"], third.content) == (200, "miss", direct.content)


def test_keys_rate_limits_and_limits_are_refused_naming_the_setting(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(
        '[keys.grafana]\ntoken = "grafana-token-0123456789"\nteam = "platform"\nrequests_per_minute = 3\n'
    )
    port = free_port()
    settings = {
        "OTEL_KIT_QUERY_API_KEYS_FILE": str(keys),
        "OTEL_KIT_QUERY_MAX_RANGE": "1d",
        "OTEL_KIT_QUERY_MAX_SERIES": "4",
    }
    params = {
        "query": "sum(in_flight)",
        "start": str(endpoints.base + 100),
        "end": str(endpoints.base + 5000),
        "step": "60",
    }
    url = f"http://127.0.0.1:{port}/api/v1/query_range"
    with _query_service(endpoints.prometheus, port, tmp_path / "service.log", **settings):
        assert httpx.get(url, params=params).status_code == 401
        wrong = httpx.get(url, params=params, headers={"Authorization": "Bearer not-a-known-token-at-all"})
        assert wrong.status_code == 401
        assert "Authorization: Bearer" in wrong.json()["error"]
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200  # no key needed
        bearer = {"Authorization": "Bearer grafana-token-0123456789"}
        direct = httpx.get(f"{endpoints.prometheus}/api/v1/query_range", params=params)
        assert httpx.get(url, params=params, headers=bearer).content == direct.content
        too_long = {**params, "end": str(endpoints.base + 2 * DAY)}
        refused = httpx.get(url, params=too_long, headers=bearer)
        assert refused.status_code == 400
        assert "over the service's maximum of 1 days (OTEL_KIT_QUERY_MAX_RANGE)" in refused.json()["error"]
        many = httpx.get(url, params={**params, "query": "in_flight"}, headers=bearer)  # 9 series
        assert many.status_code == 422
        assert "9 series, over the service's maximum of 4 (OTEL_KIT_QUERY_MAX_SERIES)" in many.json()["error"]
        limited = httpx.get(url, params=params, headers=bearer)  # the fourth request in a minute
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "over its 3 requests a minute" in limited.json()["error"]


@pytest.fixture(scope="module")
def label_proxy(endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """prom-label-proxy in front of the test Prometheus, as the local stack runs it, but on this
    data's `service` label (the stack's is service_name)."""
    built = subprocess.run(
        ["bash", str(REPO / "deploy/local/build-go.sh"), "prom-label-proxy"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    port, internal = free_port(), free_port()
    log = tmp_path_factory.mktemp("label-proxy") / "proxy.log"
    proxy = HTTPExecutor(
        [
            built.stdout.strip().splitlines()[-1], "-label=service", "-header-name=X-Otel-Kit-Services",
            f"-upstream={endpoints.prometheus}", f"-insecure-listen-address=127.0.0.1:{port}",
            f"-internal-listen-address=127.0.0.1:{internal}", "-enable-label-apis", "-error-on-replace",
        ],
        url=f"http://127.0.0.1:{internal}/metrics", timeout=30,
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    with proxy:
        yield f"http://127.0.0.1:{port}"


def test_a_team_key_sees_only_its_services_series(
    endpoints: Endpoints, label_proxy: str, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(
        '[keys.platform]\ntoken = "platform-token-0123456789"\nteam = "platform"\n'
        '[keys.shop]\ntoken = "shop-team-token-0123456789"\nteam = "shop"\nservices = ["shop"]\n'
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    platform = {"Authorization": "Bearer platform-token-0123456789"}
    shop = {"Authorization": "Bearer shop-team-token-0123456789"}
    window = {"start": str(endpoints.base + 3000), "end": str(endpoints.base + 9000), "step": "60"}
    query = "sum by (service) (rate(requests_total[5m]))"

    def direct(promql: str) -> bytes:
        params = {**window, "query": promql}
        return httpx.get(f"{endpoints.prometheus}/api/v1/query_range", params=params, timeout=30).content

    settings = {"OTEL_KIT_QUERY_API_KEYS_FILE": str(keys), "OTEL_KIT_QUERY_LABEL_PROXY_URL": label_proxy}
    with _query_service(endpoints.prometheus, port, tmp_path / "service.log", **settings):
        url = f"{base}/api/v1/query_range"
        everyone = httpx.get(url, params={**window, "query": query}, headers=platform, timeout=30)
        assert everyone.content == direct(query)
        # Cached for the platform key; the shop key's answer is its own, cold and warm.
        own = 'sum by (service) (rate(requests_total{service="shop"}[5m]))'
        for cache in ("miss", "hit"):
            answer = httpx.get(url, params={**window, "query": query}, headers=shop, timeout=30)
            assert (answer.headers["x-cache"], answer.content) == (cache, direct(own))
        other = httpx.get(url, params={**window, "query": 'requests_total{service="mes"}'}, headers=shop)
        assert other.status_code == 400
        assert "conflicting label matcher" in other.json()["error"]
        series = httpx.get(f"{base}/api/v1/series", params={"match[]": "requests_total"}, headers=shop)
        assert {s["service"] for s in series.json()["data"]} == {"shop"}
        values = httpx.get(f"{base}/api/v1/label/service/values", headers=shop)
        assert values.json()["data"] == ["shop"]
        at_end = {"query": "count(in_flight)", "time": window["end"]}
        instant = httpx.get(f"{base}/api/v1/query", params=at_end, headers=shop)
        assert instant.json()["data"]["result"][0]["value"][1] == "3"  # shop's three routes
        metadata = httpx.get(f"{base}/api/v1/metadata", headers=shop)
        purge = httpx.post(f"{base}/admin/purge", headers=shop)
        assert (metadata.status_code, purge.status_code) == (403, 403)
        assert httpx.post(f"{base}/admin/purge", headers=platform).status_code == 200


def test_a_bad_keys_file_stops_the_service_naming_the_setting(endpoints: Endpoints, tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text('[keys.short]\ntoken = "short"\nteam = "platform"\n')
    env = {**os.environ, "OTEL_KIT_QUERY_API_KEYS_FILE": str(keys), "OTEL_SDK_DISABLED": "true"}
    start = "import asyncio, query_service.app as a; asyncio.run(a._lifespan(a.app).__aenter__())"
    result = subprocess.run(
        [sys.executable, "-c", start], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert (
        "OTEL_KIT_QUERY_API_KEYS_FILE: key 'short' needs a token of at least 16 characters" in result.stderr
    )
    keys.write_text('[keys.shop]\ntoken = "shop-team-token-0123456789"\nteam = "shop"\nservices = ["shop"]\n')
    result = subprocess.run(
        [sys.executable, "-c", start], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "key 'shop' is limited to services ['shop'], which needs OTEL_KIT_QUERY_LABEL_PROXY_URL" in (
        result.stderr
    )


def test_no_input_makes_the_service_fail_with_a_server_error(endpoints: Endpoints) -> None:
    """schemathesis over the OpenAPI, every operation: whatever the parameters, no 5xx of the
    service's own (Prometheus's own 4xx and 422 answers pass through)."""
    schema = schemathesis.openapi.from_url(f"{endpoints.service}/openapi.json")
    checked = []
    for found in schema.get_all_operations():
        operation = found.ok()

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=30, deadline=None, suppress_health_check=list(hypothesis.HealthCheck)
        )
        def fuzz(case) -> None:
            case.call_and_validate(checks=[schemathesis.checks.not_a_server_error])

        fuzz()
        checked.append(operation.label)
    assert any("query_range" in label for label in checked), checked


def test_prometheus_unreachable_is_a_503_naming_the_setting(tmp_path: Path) -> None:
    dead, port = f"http://127.0.0.1:{free_port()}", free_port()
    with _query_service(dead, port, tmp_path / "service.log"):
        for path, params in [
            ("query_range", {"query": "up", "start": "1", "end": "60", "step": "15"}),
            ("labels", {}),
        ]:
            answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/{path}", params=params, timeout=30)
            assert answer.status_code == 503, answer.text
            assert answer.json()["errorType"] == "unavailable"
            assert f"Prometheus at {dead} did not answer" in answer.json()["error"]
            assert "OTEL_KIT_QUERY_PROMETHEUS_URL" in answer.json()["error"]
