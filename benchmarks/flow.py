"""The whole order flow (examples/ on the local stack), measured:

  throughput   orders per second end to end (placed -> completed), telemetry on vs off
               (OTEL_SDK_DISABLED=true), interleaved rounds
  trace-time   `otel-kit trace` wall time to a verdict, with at least N orders in Jaeger

Each merges its numbers into benchmarks/results/flow.json. The stack is started if needed;
the demo's example services are stopped for the run (each round starts its own).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from xmlrpc.client import ServerProxy

import httpx
import psycopg2
import typer
from mirakuru import HTTPExecutor

from benchmarks._common import REPO, console, ensure_stack, save
from examples._shared import SHOP_DSN
from tests.stack_fixtures import start_app

RESULTS = REPO / "benchmarks/results/flow.json"
PORTS = {"shop": 8101, "crm": 8102, "mes": 8103}
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])


def _stack_without_demo_services() -> None:
    ensure_stack()
    supervisor = ServerProxy("http://127.0.0.1:9011/RPC2").supervisor
    for name in PORTS:
        if supervisor.getProcessInfo(f"example-{name}")["statename"] == "RUNNING":
            supervisor.stopProcess(f"example-{name}", True)


def _services(mode: str) -> list[HTTPExecutor]:
    """off: OTEL_SDK_DISABLED=true; on: kit defaults; on-in-process / on-export-process: that export mode."""
    telemetry = mode != "off"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_SDK_DISABLED": "false" if telemetry else "true",
        "CRM_URL": f"http://127.0.0.1:{PORTS['crm']}",
        "OTEL_KIT_EXPORT_PROCESS": {"on-in-process": "false", "on-export-process": "true"}.get(mode, "auto"),
    }
    executors = []
    for name in ("crm", "mes", "shop"):
        log = REPO / f".stack/logs/bench-{name}.log"
        executors.append(start_app(f"examples.{name}.app:app", PORTS[name], env, log))
    return executors


def _run_orders(count: int, concurrency: int) -> float:
    """Orders per second from the first POST until the last order is completed."""
    shop = f"http://127.0.0.1:{PORTS['shop']}"
    body = {"customer_id": "bench", "items": [{"sku": "gear", "quantity": 1}]}
    started = time.monotonic()
    with httpx.Client(base_url=shop, timeout=30) as client, ThreadPoolExecutor(concurrency) as pool:
        ids = list(pool.map(lambda _: client.post("/orders", json=body).json()["id"], range(count)))
    # Completion is read from the shop's database, not its API: polling the API would put
    # thousands of traced requests into the very flow being measured.
    with psycopg2.connect(SHOP_DSN) as conn, conn.cursor() as cur:
        while True:
            cur.execute("SELECT count(*) FROM orders WHERE id = ANY(%s) AND status = 'completed'", (ids,))
            if cur.fetchone()[0] == count:
                break
            if time.monotonic() - started > 600:
                raise RuntimeError("orders did not complete within 600 s")
            conn.commit()
            time.sleep(0.05)
    return count / (time.monotonic() - started)


@app.command()
def throughput(
    orders: int = typer.Option(300, help="Orders per run."),
    rounds: int = typer.Option(3, help="Interleaved on/off rounds; the median is reported."),
    concurrency: int = typer.Option(8, help="Orders placed at once."),
    modes: str = typer.Option(
        "off,on,on-export-process", help="off, on (kit defaults), on-in-process, on-export-process."
    ),
) -> None:
    """Healthy orders per second end to end, telemetry on vs off."""
    _stack_without_demo_services()
    rates: dict[str, list[float]] = {mode: [] for mode in modes.split(",")}
    for _ in range(rounds):
        for mode in rates:
            executors = _services(mode)
            try:
                _run_orders(20, concurrency)  # warm-up: connections, first-call imports
                rates[mode].append(_run_orders(orders, concurrency))
            finally:
                for executor in reversed(executors):
                    executor.stop()
            console.print(f"{mode}: {rates[mode][-1]:.1f} orders/s")
    medians = {mode: statistics.median(values) for mode, values in rates.items()}
    result: dict = {"orders_per_run": orders, "concurrency": concurrency}
    for mode, values in rates.items():
        result[f"orders_per_second_{mode}"] = [round(r, 1) for r in values]
        result[f"median_{mode}"] = round(medians[mode], 1)
        if mode != "off" and "off" in medians:
            result[f"ratio_{mode}_to_off"] = round(medians[mode] / medians["off"], 2)
    save(RESULTS, "throughput", result)


@app.command("trace-time")
def trace_time(
    in_jaeger: int = typer.Option(10_000, help="Orders that must be in Jaeger first."),
    samples: int = typer.Option(10, help="otel-kit trace calls to time."),
) -> None:
    """Wall time of `otel-kit trace ORDER_ID` (process start to verdict) with many orders in Jaeger."""
    _stack_without_demo_services()
    jaeger = "http://127.0.0.1:16686"
    search = {"service": "shop", "operation": "POST /orders", "limit": in_jaeger}
    stored = len(httpx.get(f"{jaeger}/api/traces", params=search, timeout=120).json()["data"])
    if stored < in_jaeger:
        console.print(f"Jaeger holds {stored} shop traces; placing {in_jaeger - stored} more orders")
        executors = _services("on")
        try:
            _run_orders(in_jaeger - stored, concurrency=8)
        finally:
            for executor in reversed(executors):
                executor.stop()
    traces = httpx.get(
        f"{jaeger}/api/traces", params={"service": "shop", "operation": "POST /orders", "limit": samples},
        timeout=120,
    ).json()["data"]  # fmt: skip
    order_ids = [
        tag["value"] for trace in traces for tag in trace["spans"][0]["tags"] if tag["key"] == "order.id"
    ][:samples]
    cli = str(Path(sys.executable).parent / "otel-kit")
    times = []
    for order_id in order_ids:
        started = time.monotonic()
        result = subprocess.run([cli, "trace", order_id, "--json"], capture_output=True, check=False)
        times.append(time.monotonic() - started)
        assert result.returncode in (0, 1, 3), result.stderr
    save(
        RESULTS,
        "trace_time",
        {
            "orders_in_jaeger_at_least": in_jaeger,
            "samples": len(times),
            "median_s": round(statistics.median(times), 2),
            "max_s": round(max(times), 2),
        },
    )


if __name__ == "__main__":
    app()
