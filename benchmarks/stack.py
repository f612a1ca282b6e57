"""Stack benchmarks against the local stack (started here unless it runs):

  throughput  spans per CPU-second of the collector, through span_metrics and the Jaeger export,
              load from telemetrygen (another process)
  burst       a burst larger than the collector's memory limit: RSS, refusals, still alive
  delay       span end (in a service using otel_kit) to searchable in Jaeger
  start       stack start time, cold (stopped) to every server ready
  logs-throughput  log records per CPU-second of the collector into Elasticsearch (telemetrygen)
  logs-delay       log.error() in a service using otel_kit to searchable in Elasticsearch

Each prints a summary and merges its numbers into benchmarks/results/stack.json.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from collections import defaultdict
from xmlrpc.client import ServerProxy

import httpx
import psutil
import typer

from benchmarks._common import REPO, STACK, console, ensure_stack, save

RESULTS = REPO / "benchmarks/results/stack.json"
COLLECTOR_METRICS = "http://127.0.0.1:8888/metrics"
ELASTICSEARCH = "http://127.0.0.1:9200"

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])


def _built(name: str) -> str:
    """A Go binary built (or reused from the cache) by deploy/local/build-go.sh."""
    build = [str(REPO / "deploy/local/build-go.sh"), name]
    return subprocess.run(build, capture_output=True, text=True, check=True).stdout.split()[-1]


def _collector_metrics() -> defaultdict[str, float]:
    """The collector's own metrics, summed over labels; a counter not yet created reads 0."""
    text = httpx.get(COLLECTOR_METRICS, timeout=10).text
    totals: defaultdict[str, float] = defaultdict(float)
    for line in text.splitlines():
        match = re.match(r"^(otelcol_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if not match:
            continue
        name, labels, value = match.groups()
        if name == "otelcol_exporter_sent_spans" and 'exporter="otlp_grpc/jaeger"' not in (labels or ""):
            continue
        totals[name] += float(value)
    return totals


@app.command()
def throughput(
    workers: int = typer.Option(4, help="telemetrygen workers"),
    rate: int = typer.Option(1000, help="traces per second per worker"),
    seconds: int = typer.Option(30, help="load duration"),
    child_spans: int = typer.Option(9, help="child spans per trace"),
) -> None:
    """Spans per CPU-second of the collector: OTLP in -> processors -> Jaeger export + span_metrics."""
    ensure_stack()
    generator = _built("telemetrygen")
    before = _collector_metrics()
    started = time.monotonic()
    # A rate, not as-fast-as-possible: telemetrygen's own SDK queue drops what it cannot send,
    # and the collector can only be measured on what reaches it.
    subprocess.run(
        [
            str(generator), "traces", "--otlp-endpoint", "127.0.0.1:4317", "--otlp-insecure",
            "--workers", str(workers), "--rate", str(rate), "--duration", f"{seconds}s",
            "--child-spans", str(child_spans), "--service", "bench-throughput",
            "--telemetry-attributes", 'http.route="/orders"',
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    with console.status("waiting for the collector to export every accepted span to Jaeger"):
        deadline = time.monotonic() + 120
        while True:
            now = _collector_metrics()
            sent = now["otelcol_exporter_sent_spans"] - before["otelcol_exporter_sent_spans"]
            accepted = now["otelcol_receiver_accepted_spans"] - before["otelcol_receiver_accepted_spans"]
            if sent >= accepted or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    elapsed = time.monotonic() - started
    cpu = now["otelcol_process_cpu_seconds"] - before["otelcol_process_cpu_seconds"]
    save(
        RESULTS,
        "throughput",
        {
            "offered_spans": workers * rate * seconds * (1 + child_spans),
            "accepted": accepted,
            "exported_to_jaeger": sent,
            "refused": now["otelcol_receiver_refused_spans"] - before["otelcol_receiver_refused_spans"],
            "wall_seconds": round(elapsed, 1),
            "collector_cpu_seconds": round(cpu, 2),
            "spans_per_cpu_second": round(sent / cpu),
            "spans_per_wall_second": round(sent / elapsed),
        },
    )


@app.command()
def burst(
    limit_mib: int = typer.Option(96, help="memory_limiter limit for this run"),
    workers: int = typer.Option(8, help="telemetrygen workers"),
    seconds: int = typer.Option(20, help="burst length"),
) -> None:
    """A burst beyond memory_limiter while Jaeger is unreachable, so spans pile up in the export queue.

    The stack's collector is replaced for the run by one with a small limit and a dead Jaeger
    endpoint (telemetrygen alone cannot outrun the collector on 2 cores), then restarted.
    """
    ensure_stack()
    generator = _built("telemetrygen")
    supervisor = ServerProxy("http://127.0.0.1:9011/RPC2").supervisor  # the stack's supervisord
    config = REPO / "collector/otelcol-config.yaml"
    binary = _built("otelcol")
    supervisor.stopProcess("otelcol", True)
    env = {
        **os.environ,
        "OTELCOL_MEMORY_LIMIT_MIB": str(limit_mib),
        "OTELCOL_MEMORY_SPIKE_MIB": str(limit_mib // 4),
        "JAEGER_OTLP_ENDPOINT": "127.0.0.1:9",  # discard port: nothing listens
    }
    log = (REPO / ".stack/logs/otelcol-burst.log").open("w")
    collector = subprocess.Popen(
        [binary, "--config", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while not _ready("http://127.0.0.1:13133/"):
            if time.monotonic() > deadline:
                raise RuntimeError("the burst collector did not start: see .stack/logs/otelcol-burst.log")
            time.sleep(0.2)
        before = _collector_metrics()
        load = subprocess.Popen(
            [
                str(generator), "traces", "--otlp-endpoint", "127.0.0.1:4317", "--otlp-insecure",
                "--workers", str(workers), "--duration", f"{seconds}s", "--rate", "0",
                "--child-spans", "20", "--service", "bench-burst",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        peak_rss = 0.0
        while load.poll() is None:
            peak_rss = max(peak_rss, psutil.Process(collector.pid).memory_info().rss / 2**20)
            time.sleep(0.2)
        after = _collector_metrics()
        alive = collector.poll() is None and _ready("http://127.0.0.1:13133/")
    finally:
        collector.terminate()
        collector.wait(30)
        supervisor.startProcess("otelcol", True)
    save(
        RESULTS,
        "burst",
        {
            "memory_limit_mib": limit_mib,
            "seconds": seconds,
            "accepted": after["otelcol_receiver_accepted_spans"] - before["otelcol_receiver_accepted_spans"],
            "refused": after["otelcol_receiver_refused_spans"] - before["otelcol_receiver_refused_spans"],
            "peak_rss_mib": round(peak_rss, 1),
            "collector_alive_after": alive,
        },
    )


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@app.command()
def delay(
    spans: int = typer.Option(20, help="spans to time, one after another"),
    schedule_delay_ms: int = typer.Option(0, help="sender OTEL_BSP_SCHEDULE_DELAY; 0: kit default"),
) -> None:
    """Span end -> searchable in Jaeger by trace id, for spans sent by a service using otel_kit."""
    ensure_stack()
    code = f"""
import json, time, urllib.error, urllib.request, otel_kit
from opentelemetry import trace
otel_kit.init("bench-delay")
tracer = trace.get_tracer("bench")
delays = []
for n in range({spans}):
    with tracer.start_as_current_span("delay probe") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    ended = time.monotonic()
    while True:  # urllib, not httpx: the kit would trace the polling itself
        try:
            urllib.request.urlopen(f"http://127.0.0.1:16686/api/traces/{{trace_id}}", timeout=5)
            break
        except urllib.error.HTTPError:
            time.sleep(0.02)
    delays.append(time.monotonic() - ended)
print(json.dumps(delays))
"""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_METRICS_EXPORTER": "none",
    }
    if schedule_delay_ms:
        env["OTEL_BSP_SCHEDULE_DELAY"] = str(schedule_delay_ms)
    out = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-c", code], env=env, capture_output=True, text=True, check=True
    )
    delays = sorted(json.loads(out.stdout.strip().splitlines()[-1]))
    save(
        RESULTS,
        f"delay_schedule_{schedule_delay_ms or 'kit_default'}",
        {
            "spans": spans,
            "bsp_schedule_delay_ms": schedule_delay_ms or "kit default (1000)",
            "median_s": round(statistics.median(delays), 2),
            "p95_s": round(delays[int(0.95 * (len(delays) - 1))], 2),
            "max_s": round(delays[-1], 2),
        },
    )


def _indexed(query: str) -> int:
    """Log records in Elasticsearch matching a Lucene query, searchable now."""
    response = httpx.post(
        f"{ELASTICSEARCH}/logs-*.otel-*/_count",
        json={"query": {"query_string": {"query": query}}},
        timeout=30,
    )
    return response.raise_for_status().json()["count"]


@app.command("logs-throughput")
def logs_throughput(
    workers: int = typer.Option(4, help="telemetrygen workers"),
    rate: int = typer.Option(5000, help="log records per second per worker"),
    seconds: int = typer.Option(30, help="load duration"),
) -> None:
    """Log records per CPU-second of the collector: OTLP in -> transform, redaction -> Elasticsearch."""
    ensure_stack()
    generator = _built("telemetrygen")
    run = f"bench-logs-{time.strftime('%H%M%S')}"
    before = _collector_metrics()
    started = time.monotonic()
    subprocess.run(
        [
            str(generator), "logs", "--otlp-endpoint", "127.0.0.1:4317", "--otlp-insecure",
            "--workers", str(workers), "--rate", str(rate), "--duration", f"{seconds}s",
            "--service", run, "--severity-text", "Error", "--severity-number", "17",
            "--body", "order ord-1a2b3c4d5e6f failed: connection refused by 127.0.0.1:5434",
            "--telemetry-attributes", 'order.id="ord-1a2b3c4d5e6f"',
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    query = f'resource.attributes.service.name:"{run}"'
    with console.status("waiting until Elasticsearch has indexed every accepted record"):
        deadline = time.monotonic() + 300
        while True:
            now = _collector_metrics()
            accepted = (
                now["otelcol_receiver_accepted_log_records"] - before["otelcol_receiver_accepted_log_records"]
            )
            indexed = _indexed(query)
            if indexed >= accepted or time.monotonic() > deadline:
                break
            time.sleep(1)
    elapsed = time.monotonic() - started
    cpu = now["otelcol_process_cpu_seconds"] - before["otelcol_process_cpu_seconds"]
    save(
        RESULTS,
        "logs_throughput",
        {
            "offered_records": workers * rate * seconds,
            "accepted": accepted,
            "indexed": indexed,
            "refused": now["otelcol_receiver_refused_log_records"]
            - before["otelcol_receiver_refused_log_records"],
            "wall_seconds": round(elapsed, 1),
            "collector_cpu_seconds": round(cpu, 2),
            "records_per_collector_cpu_second": round(indexed / cpu),
            "records_per_wall_second": round(indexed / elapsed),
        },
    )


@app.command("logs-delay")
def logs_delay(records: int = typer.Option(20, help="records to time, one after another")) -> None:
    """log.error() in a service using otel_kit -> found by a search in Elasticsearch (kit defaults)."""
    ensure_stack()
    code = """
import json, logging, sys, time, urllib.request, uuid, otel_kit
otel_kit.init("bench-logs-delay")
log = logging.getLogger("bench")
delays = []
for n in range(int(sys.argv[1])):
    probe = uuid.uuid4().hex
    logged = time.monotonic()
    log.error("delay probe %s", probe)
    body = json.dumps({"query": {"match_phrase": {"body.text": probe}}}).encode()
    while True:  # urllib, not httpx: the kit would trace the polling itself
        request = urllib.request.Request(
            "http://127.0.0.1:9200/logs-*.otel-*/_count", body, {"content-type": "application/json"}
        )
        if json.load(urllib.request.urlopen(request, timeout=5))["count"]:
            break
        time.sleep(0.05)
    delays.append(time.monotonic() - logged)
print(json.dumps(delays))
"""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_METRICS_EXPORTER": "none",
    }
    out = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-c", code, str(records)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    delays = sorted(json.loads(out.stdout.strip().splitlines()[-1]))
    save(
        RESULTS,
        "logs_delay",
        {
            "records": records,
            "median_s": round(statistics.median(delays), 2),
            "p95_s": round(delays[int(0.95 * (len(delays) - 1))], 2),
            "max_s": round(delays[-1], 2),
        },
    )


@app.command()
def start(rounds: int = typer.Option(3, help="stop/start rounds")) -> None:
    """Stack start time from stopped to every server ready (binaries built, data present)."""
    times = []
    for _ in range(rounds):
        subprocess.run([str(STACK), "stop"], check=True, capture_output=True)
        started = time.monotonic()
        subprocess.run([str(STACK), "start"], check=True, capture_output=True)
        times.append(time.monotonic() - started)
    save(RESULTS, "start", {"rounds": rounds, "seconds": [round(t, 1) for t in times]})


if __name__ == "__main__":
    app()
