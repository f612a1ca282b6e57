"""The query service under a dashboard-refresh load: three arms over the same deterministic data.

    .venv/bin/python -m benchmarks.query_service --clients 20 --seconds 120

A private Prometheus holds a day of span metrics (promtool tsdb create-blocks-from
openmetrics: 1,440 histogram bucket series and 120 call counters, every 30 s). Each client
refreshes the same 12 panels over a 6 h range every 15 s, the window sliding with the clock
(on settled data, so the cache is measured as dashboards over history use it). Arms:
straight to Prometheus, through the service with the cache off (1-byte memory cache), and
with it on. Per arm: the range queries Prometheus answered, the samples they read (its
query log's totalQueryableSamples), its CPU, and the clients' p50/p99; then every answer
of the service arms is checked byte for byte against Prometheus's answer to the same request.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import httpx
import typer

from benchmarks._common import REPO, console, save
from tests.integration.servers import free_port

RESULTS = REPO / f"benchmarks/results/query-service-{time.strftime('%Y-%m-%d')}.json"
STEP = 60
SERVICES = ("shop", "crm", "mes")
ROUTES = tuple(f"/route/{n}" for n in range(10))
BUCKETS = (
    "5.0",
    "10.0",
    "25.0",
    "50.0",
    "100.0",
    "250.0",
    "500.0",
    "1000.0",
    "2500.0",
    "5000.0",
    "10000.0",
    "+Inf",
)
CALLS = "traces_span_metrics_calls_total"
DURATION = "traces_span_metrics_duration_milliseconds_bucket"
PANELS = [
    f"sum by (service_name) (rate({CALLS}[5m]))",
    f'sum by (service_name) (rate({CALLS}{{status_code="STATUS_CODE_ERROR"}}[5m]))'
    f" / sum by (service_name) (rate({CALLS}[5m]))",
    f"histogram_quantile(0.5, sum by (service_name, le) (rate({DURATION}[5m])))",
    f"histogram_quantile(0.95, sum by (service_name, le) (rate({DURATION}[5m])))",
    f"histogram_quantile(0.99, sum by (service_name, le) (rate({DURATION}[5m])))",
    f"sum by (service_name, http_route) (rate({CALLS}[5m]))",
    f'histogram_quantile(0.99, sum by (http_route, le) (rate({DURATION}{{service_name="shop"}}[5m])))',
    f'sum by (http_route) (rate({CALLS}{{service_name="crm"}}[5m]))',
    f"sum(rate({CALLS}[1m]))",
    f"topk(5, sum by (http_route) (rate({CALLS}[5m])))",
    f"sum by (service_name) (increase({CALLS}[1h]))",
    f'sum by (le) (rate({DURATION}{{service_name="mes"}}[5m]))',
]
app = typer.Typer(add_completion=False)


def _data(path: Path, start: int, hours: int) -> None:
    rows = []
    for s, service in enumerate(SERVICES):
        for r, route in enumerate(ROUTES):
            for status in ("STATUS_CODE_UNSET", "STATUS_CODE_ERROR"):
                labels = f'service_name="{service}",http_route="{route}",status_code="{status}"'
                rate = (s + 1) * (r + 1) * (1 if status == "STATUS_CODE_UNSET" else 0.05)
                for n, t in enumerate(range(start, start + hours * 3600, 30)):
                    count = int(n * rate * 30)
                    rows.append((t, f"{CALLS}{{{labels}}} {count} {t}"))
                    for b, le in enumerate(BUCKETS):
                        share = min(1.0, (b + 1) / (len(BUCKETS) - 2))
                        rows.append((t, f'{DURATION}{{{labels},le="{le}"}} {int(count * share)} {t}'))
    rows.sort(key=lambda row: (row[1].split("{")[0], row[0]))
    counters = [r for _, r in rows if r.startswith(CALLS)]
    buckets = [r for _, r in rows if r.startswith(DURATION)]
    path.write_text(
        "\n".join(
            [f"# TYPE {CALLS[:-6]} counter", *counters, f"# TYPE {DURATION[:-7]} counter", *buckets, "# EOF"]
        )
        + "\n"
    )


def _prometheus_figures(url: str, query_log: Path) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    figures = {"range_queries": 0.0, "cpu_seconds": 0.0, "samples_read": float(_samples_read(query_log))}
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query_range"' in line:
            figures["range_queries"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("process_cpu_seconds_total "):
            figures["cpu_seconds"] = float(line.rsplit(" ", 1)[1])
    return figures


def _samples_read(query_log: Path) -> int:
    """Samples every query so far read, from the query log: Prometheus 2.42 has no counter for it."""
    if not query_log.exists():
        return 0
    with query_log.open() as lines:
        return sum(json.loads(line)["stats"]["samples"]["totalQueryableSamples"] for line in lines)


def _client(
    url: str, number: int, clients: int, seconds: int, data_end: int, began: float
) -> tuple[list, list]:
    """One dashboard: every panel every 15 s, the window's end moving with the clock.

    Returns its (seconds, X-Cache) per answer and (params, status, sha256) per answer.
    """
    latencies, record = [], []
    with httpx.Client(base_url=url, timeout=60) as http:
        time.sleep(number * 15 / clients)  # clients spread over the refresh interval
        while time.monotonic() - began < seconds:  # CLOCK_MONOTONIC: one clock for every process
            refreshed = time.monotonic()
            end = data_end - 3 * 3600 + (refreshed - began)
            start = (int(end) - 6 * 3600) // STEP * STEP  # Grafana aligns start to the step
            for panel in PANELS:
                params = {"query": panel, "start": str(start), "end": f"{end:.3f}", "step": str(STEP)}
                sent = time.perf_counter()
                answer = http.get("/api/v1/query_range", params=params)
                took = time.perf_counter() - sent
                latencies.append((took, answer.headers.get("x-cache", "")))
                record.append((params, answer.status_code, hashlib.sha256(answer.content).hexdigest()))
            time.sleep(max(0.0, 15 - (time.monotonic() - refreshed)))
    return latencies, record


def _load(
    url: str, clients: int, seconds: int, data_end: int, record: list, processes: bool
) -> list[tuple[float, str]]:
    """`clients` dashboards at once, each a process (or a thread of this one)."""
    began = time.monotonic()
    pool = ProcessPoolExecutor if processes else ThreadPoolExecutor
    with pool(max_workers=clients) as workers:
        futures = [workers.submit(_client, url, n, clients, seconds, data_end, began) for n in range(clients)]
        latencies: list[tuple[float, str]] = []
        for future in futures:
            client_latencies, client_record = future.result()
            latencies += client_latencies
            record += client_record
    return latencies


@app.command()
def main(
    clients: int = typer.Option(20, help="dashboards refreshing at once"),
    seconds: int = typer.Option(120, help="load per arm (the issue's figure: 600)"),
    hours: int = typer.Option(24, min=10, help="hours of data (the window is 6 h, 3 h before the end)"),
    uncached: bool = typer.Option(True, help="also the arm through the service with the cache off"),
    processes: bool = typer.Option(
        True, help="each client a process (threads share one GIL, and their waits count as the service's)"
    ),
) -> None:
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        data_end = (int(time.time()) // 3600 - 2) * 3600
        with console.status("writing a day of span metrics into a Prometheus TSDB"):
            _data(folder / "data.om", data_end - hours * 3600, hours)
            backfill = ["promtool", "tsdb", "create-blocks-from", "openmetrics"]
            subprocess.run(
                [*backfill, str(folder / "data.om"), str(folder / "tsdb")], check=True, capture_output=True
            )
        query_log = folder / "queries.log"
        config = f"global:\n  scrape_interval: 15s\n  query_log_file: {query_log}\n"
        (folder / "prometheus.yml").write_text(config)
        prom_port = free_port()
        prometheus = subprocess.Popen(
            ["/usr/bin/prometheus", f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'tsdb'}", "--storage.tsdb.retention.time=30d",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        prom = f"http://127.0.0.1:{prom_port}"
        try:
            _wait(f"{prom}/-/ready")
            results = {}
            arms = [("direct", None), ("service, cache off", "1"), ("service, cache on", str(256 * 2**20))]
            for arm, cache_bytes in arms if uncached else [arms[0], arms[2]]:
                url, service = prom, None
                if cache_bytes is not None:
                    port = free_port()
                    env = {
                        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
                        "OTEL_KIT_QUERY_PROMETHEUS_URL": prom,
                        "OTEL_KIT_QUERY_PROMETHEUS_RETENTION": "30d",
                        "OTEL_KIT_QUERY_CACHE_BYTES": cache_bytes,
                        "OTEL_SDK_DISABLED": "true",
                    }
                    service = subprocess.Popen(
                        [sys.executable, "-m", "uvicorn", "query_service.app:app", "--port", str(port),
                         "--log-level", "warning", "--timeout-keep-alive", "75"],  # as deploy/ starts it
                        env=env, cwd=REPO,
                    )  # fmt: skip
                    url = f"http://127.0.0.1:{port}"
                    _wait(f"{url}/health")
                before = _prometheus_figures(prom, query_log)
                record: list = []
                with console.status(f"{arm}: {clients} clients for {seconds} s"):
                    answered = _load(url, clients, seconds, data_end, record, processes)
                latencies = sorted(took for took, _ in answered)
                hits = sorted(took for took, cache in answered if cache == "hit")
                after = _prometheus_figures(prom, query_log)
                in_service = _hit_times(url) if service is not None else {}
                if service is not None:
                    service.terminate()
                    service.wait(30)
                identical = _identical(prom, record) if cache_bytes is not None else None
                results[arm] = {
                    "answers": len(record),
                    "prometheus_range_queries": int(after["range_queries"] - before["range_queries"]),
                    "prometheus_samples_read": int(after["samples_read"] - before["samples_read"]),
                    "prometheus_cpu_seconds": round(after["cpu_seconds"] - before["cpu_seconds"], 2),
                    "client_p50_ms": round(statistics.median(latencies) * 1000, 2),
                    "client_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
                    "cache_hits": len(hits),
                    "hit_p99_ms": round(hits[int(0.99 * (len(hits) - 1))] * 1000, 2) if hits else None,
                    "identical_to_prometheus": identical,
                    **in_service,
                }
                console.print(arm, results[arm])
        finally:
            prometheus.terminate()
            prometheus.wait(30)
    on, direct = results["service, cache on"], results["direct"]
    results["fewer_prometheus_queries_x"] = round(
        direct["prometheus_range_queries"] / max(1, on["prometheus_range_queries"]), 1
    )
    results["fewer_samples_read_x"] = round(
        direct["prometheus_samples_read"] / max(1, on["prometheus_samples_read"]), 1
    )
    save(
        RESULTS,
        f"dashboard_refresh_{clients}_{'processes' if processes else 'clients'}_{seconds}s",
        {
            "clients": clients,
            "seconds_per_arm": seconds,
            "clients_as": "processes" if processes else "threads",
            **results,
        },
    )


def _hit_times(service: str) -> dict[str, float | None]:
    """Hits as the service timed them (query_service_answer_duration_seconds): the clients'
    own figures include their threads' wait for one another on this 2-core machine."""
    text = httpx.get(f"{service}/metrics", timeout=10).text
    buckets = {}
    for line in text.splitlines():
        if line.startswith('query_service_answer_duration_seconds_bucket{cache="hit"'):
            le = line.split('le="')[1].split('"')[0]
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
    total = buckets.get(float("inf"), 0.0)
    if not total:
        return {"service_hit_share_within_5ms": None, "service_hit_p99_at_most_ms": None}
    p99 = next(le for le, count in sorted(buckets.items()) if count >= 0.99 * total)
    return {
        "service_hit_share_within_5ms": round(buckets[0.005] / total, 4),
        "service_hit_p99_at_most_ms": p99 * 1000,
    }


def _identical(prometheus: str, record: list) -> str:
    """Each answer the service gave, against Prometheus's answer to the same request now."""
    same = 0
    with httpx.Client(base_url=prometheus, timeout=60) as http:
        for params, status, digest in record:
            answer = http.get("/api/v1/query_range", params=params)
            same += (answer.status_code, hashlib.sha256(answer.content).hexdigest()) == (status, digest)
    return f"{same}/{len(record)}"


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within 60 s")


if __name__ == "__main__":
    app()
