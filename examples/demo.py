"""The demo's second half (scripts/demo runs the first): orders with faults, then where to look.

Places a short load with every fault, waits until the orders have settled, and shows the
forensics: the lost orders by where they stopped, and the path of one of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

from examples._shared import SETTLED_STATUS

SHOP = "http://127.0.0.1:8001"
REPO = Path(__file__).resolve().parents[1]
console = Console()


def main() -> None:
    injected_file = REPO / ".stack/demo-orders.json"
    started = time.time()
    subprocess.run(
        [sys.executable, "-m", "examples.loadgen", "--orders", "40", "--each-fault", "2", "--shop", SHOP,
         "--out", str(injected_file), "--seed", str(int(time.time()))],
        check=True,
    )  # fmt: skip
    injected = json.loads(injected_file.read_text())
    with console.status("waiting for the orders to settle (CRM timeouts and the slow db take seconds)"):
        deadline = time.monotonic() + 90
        with httpx.Client(base_url=SHOP, timeout=10) as shop:
            while time.monotonic() < deadline:
                statuses = {oid: shop.get(f"/orders/{oid}").json()["status"] for oid in injected}
                if all(statuses[oid] == SETTLED_STATUS[fault] for oid, fault in injected.items()):
                    break
                time.sleep(1)
    otel_kit = str(Path(sys.executable).parent / "otel-kit")
    # The last spans reach Jaeger up to ~2 s after the orders settle (batching in the
    # services and the collector): wait until the forensics see every injected loss.
    lost_expected = {oid for oid, fault in injected.items() if SETTLED_STATUS[fault] != "completed"}

    def since() -> str:
        """This run's orders only: Jaeger keeps the traces of earlier runs and test runs (on disk)."""
        return f"{int(time.time() - started) + 5}s"

    with console.status("waiting for the last spans to reach Jaeger"):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            report = subprocess.run(
                [otel_kit, "lost-orders", "--since", since(), "--settle", "0s", "--json"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if report.returncode == 0:
                found = {oid for group in json.loads(report.stdout)["lost"] for oid in group["orders"]}
                if found & set(injected) == lost_expected:
                    break
            time.sleep(1)
    window = since()
    console.rule(f"lost orders of this run: otel-kit lost-orders --since {window} --settle 0s")
    subprocess.run([otel_kit, "lost-orders", "--since", window, "--settle", "0s"], check=False)
    example = next(oid for oid, fault in injected.items() if fault == "crm_500")
    console.rule(f"one of them: otel-kit trace {example}")
    subprocess.run([otel_kit, "trace", example], check=False)
    rejected = next(oid for oid, fault in injected.items() if fault == "reject")
    console.rule(f"one whose cause is only in a log line: otel-kit trace {rejected}")
    subprocess.run([otel_kit, "trace", rejected], check=False)
    console.rule("where to look")
    console.print(
        f"""orders and their injected faults: {injected_file}
shop API:        {SHOP}/docs      (place an order: POST /orders, see it: GET /orders/ID)
Jaeger API:      http://127.0.0.1:16686/api/traces?service=shop&limit=20
                 (the query API; Jaeger's UI assets are not in its Go module, compose has the UI)
Prometheus:      http://127.0.0.1:9090/graph?g0.expr=order_funnel%3Aorders%3Atotal
                 RED: service_route:http_server_requests:rate5m, service_route:http_server_5xx:ratio_rate5m
every metric:    docs/metrics-map.md (the PromQL of each); Grafana dashboards: compose only
alerts:          http://127.0.0.1:9090/alerts; the pages they sent (PagerDuty's Events API,
                 local here): curl -s http://127.0.0.1:9094/events; runbooks: docs/oncall/
an incident:     deploy/local/incident list   (cause one for real; `drill` runs them all)
any order:       {otel_kit} trace ORDER_ID   (--json for scripts)
logs:            {otel_kit} logs --severity error --since 15m   (services, RabbitMQ, PostgreSQL;
                 --order ID, --service NAME, --text WORDS); Elasticsearch: http://127.0.0.1:9200
query service:   http://127.0.0.1:9095/docs   (RED per route: /v1/services/shop/red; the funnel:
                 /v1/orders/funnel; Prometheus's API, cached, for Grafana: /api/v1/...)
stop it all:     deploy/local/stack stop"""
    )


if __name__ == "__main__":
    main()
