"""The Grafana dashboards' one source: every panel's PromQL, unit and description.

    python deploy/grafana/dashboards.py           # write deploy/grafana/dashboards/<folder>/<uid>.json
    python deploy/grafana/dashboards.py --check   # fail if the committed JSON is not what this writes

Built with grafana-foundation-sdk (Grafana 11.6's schema) rather than hand-written JSON: the
builders are typed, so a wrong field is an error here instead of a panel Grafana silently
ignores, and one helper gives every panel its unit, description and datasource variable.
Grafana provisions the JSON files (provisioning/dashboards/), one folder per area; the
folders' team permissions are set by deploy/grafana/access.py.
"""

# PromQL reads best whole, on one line: long query strings are allowed here.
# ruff: noqa: E501

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Server spans of the services, from the collector's span metrics.
SERVER = 'span_kind="SPAN_KIND_SERVER", service_name="$service"'
CALLS = "traces_span_metrics_calls_total"
DURATION = "traces_span_metrics_duration_milliseconds_bucket"
ROUTE = "service_name, http_route, http_request_method"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    exemplars: bool = False  # latency points that link to their trace in Jaeger


@dataclass(frozen=True)
class Chart:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # or "stat": one current figure
    width: int = 12


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str  # label_values(...) as Grafana's Prometheus datasource takes it


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    folder: str
    description: str
    rows: dict[str, tuple[Chart, ...]]
    variables: tuple[Variable, ...] = ()
    tags: tuple[str, ...] = field(default=("otel-kit",))


def _quantile(
    q: float, by: str, legend: str, selector: str = "", metric: str = DURATION, exemplars: bool = True
) -> Query:
    """The q-quantile of the histogram bucket series `metric`, per `by` (empty: one line)."""
    series = f"{metric}{{{selector}}}" if selector else metric
    group = f"{by}, le" if by else "le"
    expr = f"histogram_quantile({q}, sum by ({group}) (rate({series}[$__rate_interval])))"
    return Query(expr, legend, exemplars)


def _rate_or_zero(by: str, failed: str, every: str, legend: str) -> Query:
    """Per second of `failed`, and 0 (not an empty panel) for each `by` of `every` with none."""
    expr = f"sum by ({by}) (rate({failed}[$__rate_interval])) or sum by ({by}) (rate({every}[$__rate_interval])) * 0"
    return Query(expr, legend)


def _route_quantile(q: float) -> Query:
    return _quantile(q, ROUTE, f"p{round(q * 100)} {{{{http_request_method}}}} {{{{http_route}}}}", SERVER)


SERVICES = Board(
    uid="otel-kit-services",
    title="Services: RED per route",
    folder="Services",
    description="Rate, errors and duration of each service's routes (span metrics), its sessions, "
    "traffic and each instance's CPU and memory (the service's own OTLP metrics).",
    variables=(
        # The services that send their own metrics (the kit's), not every server span's service.
        Variable("service", "Service", "label_values(http_server_active_requests, service_name)"),
    ),
    rows={
        "Requests": (
            Chart(
                "Requests per second by route",
                "Server spans per second, per route and method: the R of RED.",
                "reqps",
                (
                    Query(
                        f"sum by ({ROUTE}) (rate({CALLS}{{{SERVER}}}[$__rate_interval]))",
                        "{{http_request_method}} {{http_route}}",
                    ),
                ),
            ),
            Chart(
                "Error ratio (5xx / all) by route",
                "Share of requests answered with a 5xx status, per route, over 5 minutes: the E of RED "
                "(recording rule service_route:http_server_5xx:ratio_rate5m). 0 when none failed.",
                "percentunit",
                (
                    Query(
                        'service_route:http_server_5xx:ratio_rate5m{service_name="$service"}',
                        "{{http_request_method}} {{http_route}}",
                    ),
                ),
            ),
            Chart(
                "Responses by status code",
                "Responses per second per route and HTTP status code (200s, 201s, 4xx, 5xx).",
                "reqps",
                (
                    Query(
                        f"sum by ({ROUTE}, http_response_status_code) (rate({CALLS}{{{SERVER}}}[$__rate_interval]))",
                        "{{http_response_status_code}} {{http_request_method}} {{http_route}}",
                    ),
                ),
            ),
            Chart(
                "Requests per second by user (top 10)",
                "Requests per second of the ten busiest users (enduser.id). The collector keeps at most "
                "OTELCOL_USER_SERIES_LIMIT users per service; the rest add up in one overflow series.",
                "reqps",
                (
                    Query(
                        'topk(10, sum by (enduser_id) (rate(traces_span_metrics_by_user_calls_total{service_name="$service"}'
                        "[$__rate_interval])))",
                        "{{enduser_id}}",
                    ),
                ),
            ),
        ),
        "Latency": (
            Chart(
                "Latency p50 / p95 / p99 by route",
                "Server span duration quantiles per route, from the span metrics histogram. "
                "Exemplars link a point to its trace in Jaeger.",
                "ms",
                (_route_quantile(0.5), _route_quantile(0.95), _route_quantile(0.99)),
                width=24,
            ),
        ),
        "Sessions and traffic": (
            Chart(
                "Requests in flight",
                "HTTP requests being served right now (http.server.active_requests), per instance.",
                "short",
                (
                    Query(
                        'sum by (service_instance_id) (http_server_active_requests{service_name="$service"})',
                        "{{service_instance_id}}",
                    ),
                ),
                width=8,
            ),
            Chart(
                "Received",
                "Request bodies received, per second (http.server.request.body.size).",
                "KBs",
                (
                    Query(
                        'sum by (http_route) (rate(http_server_request_body_size_bytes_sum{service_name="$service"}'
                        "[$__rate_interval])) / 1024",
                        "{{http_route}}",
                    ),
                ),
                width=8,
            ),
            Chart(
                "Sent",
                "Response bodies sent, per second (http.server.response.body.size).",
                "KBs",
                (
                    Query(
                        'sum by (http_route) (rate(http_server_response_body_size_bytes_sum{service_name="$service"}'
                        "[$__rate_interval])) / 1024",
                        "{{http_route}}",
                    ),
                ),
                width=8,
            ),
        ),
        "Instances": (
            Chart(
                "CPU per instance",
                "CPU used by each instance (pod) of the service, user and system, as a share of one core.",
                "percentunit",
                (
                    Query(
                        'sum by (service_instance_id) (rate(process_cpu_time_seconds_total{service_name="$service"}'
                        "[$__rate_interval]))",
                        "{{service_instance_id}}",
                    ),
                ),
            ),
            Chart(
                "Memory per instance",
                "Resident memory of each instance (pod) of the service.",
                "bytes",
                (
                    Query(
                        'sum by (service_instance_id) (process_memory_usage_bytes{service_name="$service"})',
                        "{{service_instance_id}}",
                    ),
                ),
            ),
        ),
    },
)

ORDERS = Board(
    uid="otel-kit-orders",
    title="Orders: the funnel",
    folder="Services",
    description="How many orders reached each step (recording rule order_funnel:orders:total, from the "
    "span metrics), where the lost ones stopped, and how long an order takes. Find one order with "
    "`otel-kit trace ORDER_ID`.",
    rows={
        "Funnel": (
            Chart(
                "Orders per step (last hour)",
                "Orders that reached each step in the last hour: placed (shop accepted), registered (CRM), "
                "completed (shop saw it done), dead_lettered (MES gave it up).",
                "short",
                (Query("sum by (step) (increase(order_funnel:orders:total[1h]))", "{{step}}"),),
                kind="stat",
                width=24,
            ),
            Chart(
                "Orders per step per minute",
                "The funnel over time: orders reaching each step, per minute.",
                "short",
                (
                    Query(
                        "sum by (step) (rate(order_funnel:orders:total[$__rate_interval])) * 60", "{{step}}"
                    ),
                ),
            ),
            Chart(
                "Placed and not finished (last hour)",
                "Orders placed in the last hour that neither completed nor were dead-lettered: in flight, "
                "stuck or lost. `otel-kit lost-orders` names each one and where it stopped.",
                "short",
                (
                    Query(
                        'sum(increase(order_funnel:orders:total{step="placed"}[1h])) - '
                        'sum(increase(order_funnel:orders:total{step=~"completed|dead_lettered"}[1h]))',
                        "not finished",
                    ),
                ),
            ),
        ),
        "Where orders stop": (
            Chart(
                "Failed steps by service",
                "Spans ending in error per second, per service and step: where orders fail.",
                "reqps",
                (
                    Query(
                        f'sum by (service_name, span_name) (rate({CALLS}{{status_code="STATUS_CODE_ERROR"}}'
                        "[$__rate_interval]))",
                        "{{service_name}}: {{span_name}}",
                    ),
                ),
            ),
            Chart(
                "Time from order to completion (p50 / p95)",
                "How long the MES takes per order, from its consumer span (planning, S3, CRM): the bulk of "
                "an order's time from placement to completion.",
                "ms",
                tuple(
                    _quantile(q, "", f"p{round(q * 100)}", 'service_name="mes", span_name="orders receive"')
                    for q in (0.5, 0.95)
                ),
            ),
        ),
    },
)

QUEUE = "rabbitmq_detailed_queue"
RABBITMQ = Board(
    uid="otel-kit-rabbitmq",
    title="RabbitMQ: queues",
    folder="Messaging",
    description="Per queue: ready and unacknowledged messages, consumers, dead letters (rabbitmq_prometheus, "
    "/metrics/detailed), the publish-to-consume time the consumers measure, and their processing "
    "time and dead letters from their spans.",
    rows={
        "Queues": (
            Chart(
                "Ready messages per queue",
                "Messages waiting for a consumer. Growing with consumers present: consumers too slow.",
                "short",
                (Query(f"sum by (queue) ({QUEUE}_messages_ready)", "{{queue}}"),),
            ),
            Chart(
                "Unacknowledged (in flight) per queue",
                "Messages delivered to a consumer and not yet acknowledged. Growing: consumers stuck or timing out.",
                "short",
                (Query(f"sum by (queue) ({QUEUE}_messages_unacked)", "{{queue}}"),),
            ),
            Chart(
                "Consumers per queue",
                "Consumers attached to each queue. 0 on a queue with messages: nobody is processing it.",
                "short",
                (Query(f"sum by (queue) ({QUEUE}_consumers)", "{{queue}}"),),
            ),
            Chart(
                "Dead letters per second",
                "Messages rejected into the dead-letter exchange (RabbitMQ's count for the node, by "
                "strategy), and the dead letters the shop consumed from the dead-letter queue.",
                "short",
                (
                    Query(
                        "sum by (dead_letter_strategy) (rate(rabbitmq_global_messages_dead_lettered_rejected_total"
                        "[$__rate_interval]))",
                        "rejected ({{dead_letter_strategy}})",
                    ),
                    Query(
                        f'sum by (messaging_destination_name) (rate({CALLS}{{span_kind="SPAN_KIND_CONSUMER", '
                        'span_name=~".*dlx receive"}[$__rate_interval]))',
                        "consumed from {{messaging_destination_name}}",
                    ),
                ),
            ),
        ),
        "Processing": (
            Chart(
                "Publish to consume p95 per destination",
                "How long messages waited between their publish and their consumer, per consuming service "
                "and destination (otel_kit.messaging.queue_time; the two hosts' clocks). Growing: "
                "consumers too few or stuck.",
                "ms",
                (
                    _quantile(
                        0.95,
                        "service_name, messaging_destination_name",
                        "{{service_name}} {{messaging_destination_name}}",
                        metric="otel_kit_messaging_queue_time_milliseconds_bucket",
                        exemplars=False,
                    ),
                ),
            ),
            Chart(
                "Message processing time p95 per queue",
                "How long the consumers take per message (CONSUMER spans), per service and queue. The "
                "time a message waited in its queue is in its trace: the gap between publish and receive.",
                "ms",
                (
                    _quantile(
                        0.95,
                        "service_name, messaging_destination_name",
                        "{{service_name}} {{messaging_destination_name}}",
                        'span_kind="SPAN_KIND_CONSUMER"',
                    ),
                ),
            ),
            Chart(
                "Dead letters per source queue",
                "Dead-lettered messages the shop consumed, by the queue that gave them up and why (x-death).",
                "short",
                (
                    Query(
                        "sum by (messaging_rabbitmq_dead_letter_queue, messaging_rabbitmq_dead_letter_reason) "
                        f'(rate({CALLS}{{span_kind="SPAN_KIND_CONSUMER", messaging_rabbitmq_dead_letter_queue!=""}}'
                        "[$__rate_interval]))",
                        "{{messaging_rabbitmq_dead_letter_queue}} ({{messaging_rabbitmq_dead_letter_reason}})",
                    ),
                ),
            ),
        ),
    },
)

PG = 'database="$database"'
POSTGRESQL = Board(
    uid="otel-kit-postgresql",
    title="PostgreSQL: shop db and MES db",
    folder="Databases",
    description="One PostgreSQL instance at a time (the database variable: shop or mes): connections, size, "
    "memory, locks, deadlocks, query time and index use (postgres_exporter with "
    "deploy/postgres-exporter/queries.yaml; process-exporter for memory).",
    # Each exporter's target is labelled with the instance's database (deploy/prometheus/targets).
    variables=(Variable("database", "Instance", 'label_values(pg_up{job="postgres"}, database)'),),
    rows={
        "Load": (
            Chart(
                "Connections and the limit",
                "Backends connected per database, against max_connections minus the reserved superuser slots.",
                "short",
                (
                    Query(f"sum by (datname) (pg_stat_database_numbackends{{{PG}}})", "{{datname}}"),
                    Query(
                        f"max(pg_settings_max_connections{{{PG}}}) - max(pg_settings_superuser_reserved_connections{{{PG}}})",
                        "limit",
                    ),
                ),
            ),
            Chart(
                "Database size",
                "On-disk size of each database of the instance.",
                "bytes",
                (Query(f"sum by (datname) (pg_database_size_bytes{{{PG}}})", "{{datname}}"),),
            ),
            Chart(
                "Memory of the instance",
                "Resident memory of all the instance's processes (process-exporter's group for the cluster; "
                "shared buffers are counted once per process that touched them).",
                "bytes",
                (
                    Query(
                        'sum(namedprocess_namegroup_memory_bytes{groupname="postgres-$database", memtype="resident"})',
                        "resident",
                    ),
                ),
            ),
            Chart(
                "Query time (mean)",
                "Mean execution time of the database's statements (pg_stat_statements), and statements per second.",
                "s",
                (
                    Query(
                        f"sum by (datname) (rate(pg_statements_exec_seconds_total{{{PG}}}[$__rate_interval])) / "
                        f"sum by (datname) (rate(pg_statements_calls_total{{{PG}}}[$__rate_interval]))",
                        "{{datname}}",
                    ),
                ),
            ),
        ),
        "Locks and errors": (
            Chart(
                "Locks held by mode",
                "Locks held now per lock mode (pg_locks).",
                "short",
                (Query(f'sum by (mode) (pg_locks_count{{{PG}, datname="$database"}})', "{{mode}}"),),
            ),
            Chart(
                "Lock waits",
                "Sessions waiting for a lock, and how long the longest has waited.",
                "s",
                (Query(f"max by (datname) (pg_lock_waits_max_seconds{{{PG}}})", "longest wait {{datname}}"),),
            ),
            Chart(
                "Deadlocks and rollbacks per second",
                "Deadlocks detected and transactions rolled back (errors), per second.",
                "short",
                (
                    Query(
                        f'sum(rate(pg_stat_database_deadlocks{{{PG}, datname="$database"}}[$__rate_interval]))',
                        "deadlocks",
                    ),
                    Query(
                        f'sum(rate(pg_stat_database_xact_rollback{{{PG}, datname="$database"}}[$__rate_interval]))',
                        "rollbacks",
                    ),
                ),
            ),
            Chart(
                "Index use per table",
                "Share of each table's scans that used an index. Low on a big table: a missing index.",
                "percentunit",
                (
                    Query(
                        f"sum by (relname) (rate(pg_table_scans_idx_scan{{{PG}}}[$__rate_interval])) / "
                        f"(sum by (relname) (rate(pg_table_scans_idx_scan{{{PG}}}[$__rate_interval])) + "
                        f"sum by (relname) (rate(pg_table_scans_seq_scan{{{PG}}}[$__rate_interval])))",
                        "{{relname}}",
                    ),
                ),
            ),
        ),
        "Seen by the services": (
            Chart(
                "Database calls p95 by statement kind",
                "Duration of the services' database client spans (psycopg2), per operation.",
                "ms",
                (
                    _quantile(
                        0.95,
                        "service_name, db_operation_name",
                        "{{service_name}} {{db_operation_name}}",
                        'db_system=~"postgres.*", span_kind="SPAN_KIND_CLIENT"',
                    ),
                ),
                width=24,
            ),
        ),
    },
)

S3 = Board(
    uid="otel-kit-s3",
    title="S3: buckets and requests",
    folder="Storage",
    description="Per bucket: size and objects (MinIO's scanner), requests, errors and latency by S3 API "
    "(MinIO's bucket metrics), and the services' own S3 calls (botocore client spans).",
    rows={
        "Buckets": (
            Chart(
                "Bucket size",
                "Bytes stored per bucket, as MinIO's usage scanner last counted them.",
                "bytes",
                (Query("sum by (bucket) (minio_bucket_usage_total_bytes)", "{{bucket}}"),),
            ),
            Chart(
                "Objects per bucket",
                "Objects stored per bucket, as MinIO's usage scanner last counted them.",
                "short",
                (Query("sum by (bucket) (minio_bucket_usage_object_total)", "{{bucket}}"),),
            ),
        ),
        "Requests": (
            Chart(
                "Requests per second by API",
                "S3 requests MinIO served per bucket and API (PutObject, GetObject, ...).",
                "reqps",
                (
                    Query(
                        "sum by (bucket, api) (rate(minio_bucket_requests_total[$__rate_interval]))",
                        "{{bucket}} {{api}}",
                    ),
                ),
            ),
            Chart(
                "Errors per second by API (4xx, 5xx)",
                "Requests MinIO refused (4xx: denied, missing) or failed (5xx), per bucket and API; 0 when none.",
                "reqps",
                (
                    _rate_or_zero(
                        "bucket, api",
                        "minio_bucket_requests_4xx_errors_total",
                        "minio_bucket_requests_total",
                        "4xx {{bucket}} {{api}}",
                    ),
                    _rate_or_zero(
                        "bucket, api",
                        "minio_bucket_requests_5xx_errors_total",
                        "minio_bucket_requests_total",
                        "5xx {{bucket}} {{api}}",
                    ),
                ),
            ),
            Chart(
                "Time to first byte p95 by API",
                "MinIO's time to first byte per bucket and API.",
                "s",
                (
                    _quantile(
                        0.95,
                        "bucket, api",
                        "{{bucket}} {{api}}",
                        metric="minio_bucket_requests_ttfb_seconds_distribution",
                        exemplars=False,
                    ),
                ),
            ),
            Chart(
                "Client calls and failures",
                "The services' S3 calls as they saw them (botocore client spans): calls and failed calls "
                "per second, per service and S3 operation.",
                "reqps",
                (
                    Query(
                        f'sum by (service_name, span_name) (rate({CALLS}{{span_name=~"S3[.].*"}}[$__rate_interval]))',
                        "{{service_name}} {{span_name}}",
                    ),
                    _rate_or_zero(
                        "service_name, span_name",
                        f'{CALLS}{{span_name=~"S3[.].*", status_code="STATUS_CODE_ERROR"}}',
                        f'{CALLS}{{span_name=~"S3[.].*"}}',
                        "failed {{service_name}} {{span_name}}",
                    ),
                ),
            ),
        ),
    },
)

NODE = 'job="node"'
SYSTEM = Board(
    uid="otel-kit-system",
    title="System: hosts and telemetry pipeline",
    folder="System",
    description="Each host's CPU, memory and disks (node_exporter); the collector's logs and export queues.",
    rows={
        "Host": (
            Chart(
                "CPU busy",
                "Share of the host's CPU time not idle, all cores together.",
                "percentunit",
                (
                    Query(
                        f'1 - avg by (instance) (rate(node_cpu_seconds_total{{{NODE}, mode="idle"}}[$__rate_interval]))',
                        "{{instance}}",
                    ),
                ),
                width=8,
            ),
            Chart(
                "Memory used",
                "Share of the host's memory in use (MemAvailable counts reclaimable caches as free).",
                "percentunit",
                (
                    Query(
                        f"1 - node_memory_MemAvailable_bytes{{{NODE}}} / node_memory_MemTotal_bytes{{{NODE}}}",
                        "{{instance}}",
                    ),
                ),
                width=8,
            ),
            Chart(
                "Disk used",
                "Share of each mounted filesystem in use.",
                "percentunit",
                (
                    Query(
                        f'1 - node_filesystem_avail_bytes{{{NODE}, fstype!~"tmpfs|overlay|squashfs"}} / '
                        f'node_filesystem_size_bytes{{{NODE}, fstype!~"tmpfs|overlay|squashfs"}}',
                        "{{instance}} {{mountpoint}}",
                    ),
                ),
                width=8,
            ),
            Chart(
                "Disk I/O",
                "Bytes read and written per second per disk.",
                "Bps",
                (
                    Query(
                        f"sum by (instance, device) (rate(node_disk_read_bytes_total{{{NODE}}}[$__rate_interval]))",
                        "read {{device}}",
                    ),
                    Query(
                        f"sum by (instance, device) (rate(node_disk_written_bytes_total{{{NODE}}}[$__rate_interval]))",
                        "written {{device}}",
                    ),
                ),
            ),
            Chart(
                "Load average (1 min)",
                "Runnable and waiting processes, averaged over a minute.",
                "short",
                (Query(f"node_load1{{{NODE}}}", "{{instance}}"),),
            ),
        ),
        "Telemetry pipeline": (
            Chart(
                "Log records in, and to Elasticsearch",
                "Log records the collector took in per receiver (the services over OTLP, RabbitMQ's and "
                "PostgreSQL's files) and sent to Elasticsearch, per second. Sent below taken in for "
                "long: Elasticsearch is down or slow (alert LogsNotReachingElasticsearch).",
                "short",
                (
                    Query(
                        "sum by (receiver) (rate(otelcol_receiver_accepted_log_records[$__rate_interval]))",
                        "in: {{receiver}}",
                    ),
                    Query(
                        'sum(rate(otelcol_exporter_sent_log_records{exporter="elasticsearch"}[$__rate_interval]))',
                        "to Elasticsearch",
                    ),
                ),
            ),
            Chart(
                "Export queues",
                "Share of each exporter's sending queue in use (Jaeger for spans, Elasticsearch for logs): "
                "it fills while the backend is down, and at 100% the collector refuses new data.",
                "percentunit",
                (
                    Query(
                        "max by (exporter) (otelcol_exporter_queue_size / otelcol_exporter_queue_capacity)",
                        "{{exporter}}",
                    ),
                ),
            ),
        ),
    },
)

BOARDS = (SERVICES, ORDERS, RABBITMQ, POSTGRESQL, S3, SYSTEM)


def _target(query: Query, ref: str) -> prometheus.Dataquery:
    target = (
        prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref).datasource(DATASOURCE)
    )
    return target.exemplar(True) if query.exemplars else target


def _panel(chart: Chart) -> timeseries.Panel | stat.Panel:
    panel = timeseries.Panel() if chart.kind == "timeseries" else stat.Panel()
    panel = panel.title(chart.title).description(chart.description).unit(chart.unit).datasource(DATASOURCE)
    panel = panel.span(chart.width).height(8)
    for index, query in enumerate(chart.queries):
        panel = panel.with_target(_target(query, chr(ord("A") + index)))
    if chart.kind == "timeseries":
        legend = (
            common_builders.VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.TABLE)
        )
        panel = panel.legend(legend.placement(common.LegendPlacement.BOTTOM))
    return panel


def build(board: Board) -> dict:
    """The dashboard's JSON model, as Grafana provisions it."""
    dashboard = (
        db.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(list(board.tags))
        .time("now-1h", "now")
        .refresh("30s")
        .readonly()
        .with_variable(db.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for variable in board.variables:
        dashboard = dashboard.with_variable(
            db.QueryVariable(variable.name)
            .label(variable.label)
            .query(variable.query)
            .datasource(DATASOURCE)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
    for title, charts in board.rows.items():
        dashboard = dashboard.with_row(db.Row(title))
        for chart in charts:
            dashboard = dashboard.with_panel(_panel(chart))
    return json.loads(json.dumps(dashboard.build(), cls=JSONEncoder))


def render(board: Board) -> str:
    return json.dumps(build(board), indent=2, sort_keys=True) + "\n"


def path_of(board: Board) -> Path:
    return OUT / board.folder / f"{board.uid}.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed dashboard differs")
    check = parser.parse_args().check
    stale = []
    for board in BOARDS:
        path, text = path_of(board), render(board)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(f"out of date (run python {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
