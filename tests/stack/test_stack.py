"""Orders through shop -> RabbitMQ -> mes -> HTTP -> crm, read back from the real Prometheus and Jaeger."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest

from tests.stack.conftest import Services
from tests.stack.redacted import SECRET_VALUES
from tests.stack_fixtures import eventually, jaeger_get, prom_query, prom_value

# The first test also waits for the stack to start and the orders to flow through it.
pytestmark = pytest.mark.timeout(300)

OK_ORDERS, CRM_FAILURES = 120, 10
USER_SERIES_LIMIT = 100  # OTELCOL_USER_SERIES_LIMIT's default in collector/otelcol-config.yaml
CRM_ROUTE = "/customers/{user}/orders"


def calls(service: str, kind: str, **labels: str) -> str:
    selector = ",".join(
        [f'service_name="{service}"', f'span_kind="SPAN_KIND_{kind}"']
        + [f'{key}="{value}"' for key, value in labels.items()]
    )
    return f"sum(traces_span_metrics_calls_total{{{selector}}})"


@dataclass
class Run:
    """What the module's orders did, and the counters' values before they were placed."""

    order_ids: list[str]
    failed_ids: list[str]
    before: dict[str, float]
    started_ms: int


SHOP_CREATED = calls("shop", "SERVER", http_route="/orders", http_response_status_code="201")
CRM_OK = calls("crm", "SERVER", http_route=CRM_ROUTE, http_response_status_code="201")
CRM_ERRORS = calls("crm", "SERVER", http_route=CRM_ROUTE, http_response_status_code="500")
SHOP_DURATION_COUNT = (
    'sum(traces_span_metrics_duration_milliseconds_count{service_name="shop",'
    'span_kind="SPAN_KIND_SERVER",http_route="/orders"})'
)


def _settled(queries: tuple[str, ...]) -> dict[str, float]:
    """The counters' values once they stop moving: the last module's orders fully counted (the
    collector flushes span metrics every 5 s, Prometheus scrapes them every 5 s)."""
    previous: dict[str, float] = {}

    def unchanged() -> dict[str, float] | None:
        nonlocal previous
        now = {query: prom_value(query) for query in queries}
        same, previous = now == previous, now
        return now if same else None

    return eventually(unchanged, timeout=90, interval=12)


def _consumed(services: Services) -> str:
    return calls("mes", "CONSUMER", messaging_destination_name=services.queue)


@pytest.fixture(scope="module")
def run(services: Services) -> Run:
    tag = uuid.uuid4().hex[:6]
    # The session's services (and queue) also carry other modules' orders (test_logs,
    # test_query_service): counters are compared with their values before this module's.
    queries = (SHOP_CREATED, CRM_OK, CRM_ERRORS, SHOP_DURATION_COUNT, _consumed(services))
    before = _settled(queries)
    started_ms = int(time.time() * 1000)
    order_ids, failed_ids = [], []
    first_wave = 20
    with httpx.Client(base_url=services.shop, timeout=10) as client:
        for n in range(OK_ORDERS + CRM_FAILURES):
            if n == first_wave:
                # Prometheus's rate() cannot see how a series began, so on a fresh stack the
                # series must exist (first wave scraped) before the rest arrives; otherwise
                # Jaeger's Monitor tab, which reads rates, has nothing to show.
                eventually(
                    lambda: prom_value(SHOP_DURATION_COUNT) - before[SHOP_DURATION_COUNT] >= first_wave
                )
            order_id = f"stack-{tag}-{n}"
            crm_fails = n % 13 == 0  # 10 of 130, in both waves, so the error series exists early
            response = client.post(
                "/orders", json={"id": order_id, "user": f"user-{tag}-{n}", "crm_fails": crm_fails}
            )
            assert response.status_code == 201, response.text
            (failed_ids if crm_fails else order_ids).append(order_id)
    # Every order has gone through the whole flow once crm has counted all of them.
    eventually(lambda: prom_value(CRM_OK) - before[CRM_OK] >= OK_ORDERS, timeout=90)
    eventually(lambda: prom_value(CRM_ERRORS) - before[CRM_ERRORS] >= CRM_FAILURES, timeout=30)
    return Run(order_ids, failed_ids, before, started_ms)


def test_red_calls_per_service_route_and_status(run: Run, services: Services) -> None:
    total = OK_ORDERS + CRM_FAILURES
    assert eventually(lambda: prom_value(SHOP_CREATED) - run.before[SHOP_CREATED] == total or None)
    assert prom_value(CRM_OK) - run.before[CRM_OK] == OK_ORDERS
    assert prom_value(CRM_ERRORS) - run.before[CRM_ERRORS] == CRM_FAILURES
    consumed = _consumed(services)
    assert eventually(lambda: prom_value(consumed) - run.before[consumed] == total or None)


def test_red_series_name_the_service_not_one_of_its_processes(run: Run) -> None:
    """A series counts every instance of its service, so it must not carry one instance's
    identity: with it, a service the collector saw again after an idle spell starts a new
    series from 0 while the old one lingers, and a sum over both falls when it expires."""
    series = prom_query('traces_span_metrics_calls_total{service_name="shop"}')
    assert series
    per_process = {"service_instance_id", "process_pid", "host_name", "process_command_args"}
    assert [s["metric"] for s in series if per_process & s["metric"].keys()] == []


def test_duration_buckets_are_populated(run: Run) -> None:
    total = OK_ORDERS + CRM_FAILURES
    eventually(lambda: prom_value(SHOP_DURATION_COUNT) - run.before[SHOP_DURATION_COUNT] == total)
    buckets = prom_query(
        'sum by (le) (traces_span_metrics_duration_milliseconds_bucket{service_name="shop",'
        'span_kind="SPAN_KIND_SERVER",http_route="/orders"})'
    )
    counts = {float(b["metric"]["le"]): float(b["value"][1]) for b in buckets}
    # The configured buckets (collector/otelcol-config.yaml), cumulative and filled below +Inf.
    bounds = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, float("inf")]
    assert sorted(counts) == bounds
    cumulative = [counts[le] for le in bounds]
    assert cumulative == sorted(cumulative)
    assert cumulative[-2] > 0


def test_service_graph_edges_from_jaeger(run: Run) -> None:
    def edges() -> set[tuple[str, str]] | None:
        now = int(time.time() * 1000)
        data = jaeger_get("/api/dependencies", endTs=now, lookback=now - run.started_ms + 60_000)["data"]
        found = {(edge["parent"], edge["child"]) for edge in data}
        return found if {("shop", "mes"), ("mes", "crm")} <= found else None

    assert {("shop", "mes"), ("mes", "crm")} <= eventually(edges, timeout=30)


def test_per_user_series_are_capped(run: Run) -> None:
    # What the collector exports now: series scraped in the last 15 s (Prometheus still shows
    # series of a collector that ran before for 5 minutes).
    series = eventually(
        lambda: prom_query(
            'timestamp(traces_span_metrics_by_user_calls_total{service_name="shop"}) > time() - 15'
        ),
        timeout=30,
    )
    overflow = [s for s in series if s["metric"].get("otel_metric_overflow") == "true"]
    users = [s for s in series if s not in overflow]
    # The run alone sends more users than the limit: the limit is reached, the rest folded.
    assert len(users) == USER_SERIES_LIMIT
    assert all("enduser_id" in s["metric"] for s in users)
    assert len(overflow) == 1


def _trace_of(order_id: str) -> dict:
    tags = json.dumps({"order.id": order_id})

    def complete() -> dict | None:
        traces = jaeger_get("/api/traces", service="shop", tags=tags, lookback="1h")["data"]
        if len(traces) == 1 and {p["serviceName"] for p in traces[0]["processes"].values()} == {
            "shop",
            "mes",
            "crm",
        }:
            return traces[0]
        return None

    return eventually(complete, timeout=30)


def _tags(span: dict) -> dict[str, object]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


def test_jaeger_finds_the_whole_trace_by_order_id(run: Run, services: Services) -> None:
    order_id = run.order_ids[len(run.order_ids) // 2]
    trace = _trace_of(order_id)
    service_of = {key: process["serviceName"] for key, process in trace["processes"].items()}
    names = sorted((service_of[span["processID"]], span["operationName"]) for span in trace["spans"])
    assert names == [
        ("crm", f"POST {CRM_ROUTE}"),
        ("mes", "POST"),  # the httpx client span: stable HTTP semconv names it by method
        ("mes", f"{services.queue} receive"),
        ("shop", "POST /orders"),
        ("shop", "check customer"),
        ("shop", f"{services.queue} send"),
    ]
    assert all(_tags(span).get("order.id") == order_id for span in trace["spans"])


def test_redacted_values_never_reach_jaeger(run: Run) -> None:
    trace = _trace_of(run.order_ids[0])
    text = json.dumps(trace)
    for key, value in SECRET_VALUES.items():
        assert value not in text, f"{key} reached Jaeger unredacted"
    [check] = [span for span in trace["spans"] if span["operationName"] == "check customer"]
    tags = _tags(check)
    # The keys stay (so one can see something was there); the values are masked or scrubbed.
    assert set(SECRET_VALUES) <= set(tags)
    assert "literal-not-for-jaeger" not in str(tags["db.query.text"])
    assert "sigv4-not-for-jaeger" not in str(tags["url.full"])
    # Only the credential goes: the rest of the URL still says what was called.
    assert str(tags["url.original"]).startswith("https://rates.example.com/v1/eur?")
    assert str(tags["url.original"]).endswith("&day=2026-11-22")


@pytest.mark.parametrize(("metric", "service", "extra"), [
    ("calls", "shop", {}),
    ("latencies", "shop", {"quantile": 0.95}),
    ("errors", "crm", {}),
])  # fmt: skip
def test_jaeger_monitor_tab_reads_span_metrics(run: Run, metric: str, service: str, extra: dict) -> None:
    def points() -> list[float] | None:
        now = int(time.time() * 1000)
        body = jaeger_get(
            f"/api/metrics/{metric}", service=service, endTs=now, lookback=15 * 60_000, step=5_000,
            ratePer=60_000, spanKind="server", **extra,
        )  # fmt: skip
        values = [
            point["gaugeValue"]["doubleValue"]
            for series in body["metrics"]
            for point in series["metricPoints"]
            if isinstance(point["gaugeValue"].get("doubleValue"), float)
        ]
        return [v for v in values if v > 0] or None

    assert eventually(points, timeout=45)


def test_an_exemplar_names_a_trace_that_jaeger_returns(run: Run) -> None:
    def exemplar_trace_ids() -> list[str] | None:
        now = time.time()
        response = httpx.get(
            "http://127.0.0.1:9090/api/v1/query_exemplars",
            params={
                "query": 'traces_span_metrics_duration_milliseconds_bucket{service_name="crm"}',
                "start": run.started_ms / 1000 - 5,
                "end": now,
            },
            timeout=10,
        )
        response.raise_for_status()
        ids = [
            exemplar["labels"]["trace_id"]
            for series in response.json()["data"]
            for exemplar in series["exemplars"]
            if "trace_id" in exemplar["labels"]
        ]
        return ids or None

    trace_id = eventually(exemplar_trace_ids, timeout=45)[-1]
    [trace] = jaeger_get(f"/api/traces/{trace_id}")["data"]
    services = {p["serviceName"] for p in trace["processes"].values()}
    assert "crm" in services
    order_ids = {_tags(span).get("order.id") for span in trace["spans"]}
    assert order_ids & set(run.order_ids + run.failed_ids)


def test_prometheus_scrapes_every_part_of_the_stack(stack: None) -> None:
    jobs = {
        "span-metrics",
        "otel-collector",
        "jaeger",
        "prometheus",
        "alertmanager",
        "rabbitmq",
        "rabbitmq-queues",
        "postgres",
        "node",
        "process",
        "minio",
        "minio-buckets",
        "query-service",
    }

    def health() -> dict[str, set[str]] | None:
        targets = httpx.get("http://127.0.0.1:9090/api/v1/targets", timeout=10).json()["data"][
            "activeTargets"
        ]
        by_job: dict[str, set[str]] = {}
        for target in targets:
            by_job.setdefault(target["labels"]["job"], set()).add(target["health"])
        return by_job if all(by_job.get(job) == {"up"} for job in jobs) else None

    assert set(eventually(health, timeout=30)) == jobs


def test_rabbitmq_figures_are_per_queue(run: Run, services: Services) -> None:
    """The user asked for messages in flight and consumers per queue (the plugin's /metrics sums them)."""
    for family in ("messages_ready", "messages_unacked", "consumers"):
        query = f'rabbitmq_detailed_queue_{family}{{queue="{services.queue}"}}'
        series = eventually(lambda query=query: prom_query(query))
        assert [s["metric"]["vhost"] for s in series] == ["/"]
    (consumers,) = prom_query(f'rabbitmq_detailed_queue_consumers{{queue="{services.queue}"}}')
    assert float(consumers["value"][1]) >= 1  # the stack test's mes consumes it


def test_each_database_instance_s_memory_and_the_host_s_cpu_ram_and_disk(stack: None) -> None:
    """Rows 10 and 19 of the metrics map: memory per PostgreSQL instance; host CPU, RAM, disk."""
    resident = 'namedprocess_namegroup_memory_bytes{memtype="resident",groupname=~"postgres-.*"}'
    series = eventually(lambda: len(prom_query(resident)) == 2 and prom_query(resident))
    assert {s["metric"]["groupname"] for s in series} == {"postgres-shop", "postgres-mes"}
    assert all(float(s["value"][1]) > 1e6 for s in series)  # a cluster and its backends: megabytes
    for query in (
        '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[1m]))',
        "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
        'node_filesystem_avail_bytes{mountpoint="/"}',
    ):
        (value,) = eventually(lambda query=query: prom_query(query))
        assert float(value["value"][1]) > 0, query
