"""The three example services (examples/) on the local stack, and a load of orders with every fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mirakuru import HTTPExecutor

from examples._shared import SETTLED_STATUS
from tests.integration.servers import free_port
from tests.stack_fixtures import REPO, eventually, prom_query, start_app

ORDERS, EACH_FAULT = 70, 5
# MinIO's usage scanner counts a bucket's size and objects once a minute, after a minute's
# delay from its start: queries of those figures wait for it (the rest trail by seconds).
SCANNER_LAG = 240


def scanned(promql: str) -> bool:
    return "minio_bucket_usage_" in promql


@dataclass
class Examples:
    """The running examples: their URLs, and each one's process to stop and start for an outage."""

    urls: dict[str, str]
    executors: dict[str, HTTPExecutor]


@pytest.fixture(scope="session")
def examples(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Examples]:
    """shop, CRM and MES as their READMEs run them: uvicorn, the kit exporting to the collector."""
    logs = tmp_path_factory.mktemp("examples")
    ports = {name: free_port() for name in ("shop", "crm", "mes")}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_METRICS_EXPORTER": "otlp",
        # Every scrape (10 s) sees fresh process and HTTP metrics; the SDK default is 60 s.
        "OTEL_METRIC_EXPORT_INTERVAL": "10000",
        "CRM_URL": f"http://127.0.0.1:{ports['crm']}",
        "MES_URL": f"http://127.0.0.1:{ports['mes']}",
    }
    executors = {}
    for name in ("crm", "mes", "shop"):
        # The shop faces the internet, as in the local stack: client context refused.
        edge = {"OTEL_KIT_TRUST_INCOMING_CONTEXT": "false"} if name == "shop" else {}
        app, log = f"examples.{name}.app:app", logs / f"{name}.log"
        executors[name] = start_app(app, ports[name], {**env, **edge}, log)
    yield Examples({name: f"http://127.0.0.1:{port}" for name, port in ports.items()}, executors)
    for executor in executors.values():
        executor.stop()


@pytest.fixture(scope="session")
def shop_url(examples: Examples) -> str:
    return examples.urls["shop"]


@dataclass
class Load:
    injected: dict[str, str]  # order id -> fault ("none" for healthy)
    funnel_before: dict[str, float]

    def orders(self, fault: str) -> list[str]:
        return [order_id for order_id, f in self.injected.items() if f == fault]


def funnel() -> dict[str, float]:
    return {r["metric"]["step"]: float(r["value"][1]) for r in prom_query("order_funnel:orders:total")}


@pytest.fixture(scope="session")
def load(shop_url: str, tmp_path_factory: pytest.TempPathFactory) -> Load:
    """70 orders, 5 of each fault, placed by the load generator; waits until each has settled."""
    folder = tmp_path_factory.mktemp("load")
    # After the drill a step's series may have idled past the collector's metrics_expiration
    # and restart from 0 with its next order. Two orders first (a healthy and a rejected one)
    # touch every step; the start is read once each step shows them (or its reset) and the
    # funnel has stopped moving: a read that agreed with itself 12 s apart could come before
    # the rules counted the warm-up (CI: every step one or two high).
    earlier = funnel()
    _place(shop_url, folder / "warm-up.json", "--orders", "2", "--faults", "reject=1")
    warmed = {"placed": 2, "registered": 1, "completed": 1, "dead_lettered": 1}

    def warm_up_counted() -> bool:
        now = funnel()
        return all(
            now.get(step, 0) >= earlier.get(step, 0) + n or n <= now.get(step, 0) < earlier.get(step, 0)
            for step, n in warmed.items()
        )

    eventually(warm_up_counted, timeout=120)
    before = _settled_funnel()
    injected = _place(
        shop_url, folder / "injected.json", "--orders", str(ORDERS), "--each-fault", str(EACH_FAULT)
    )
    assert len(injected) == ORDERS
    return Load(injected, before)


def _place(shop_url: str, out: Path, *args: str) -> dict[str, str]:
    """Orders from the load generator, once each has settled; order id -> fault."""
    subprocess.run(
        [sys.executable, "-m", "examples.loadgen", *args, "--shop", shop_url, "--out", str(out)],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    injected = json.loads(out.read_text())

    def settled() -> bool:
        with httpx.Client(base_url=shop_url, timeout=10) as client:
            return all(
                client.get(f"/orders/{order_id}").json()["status"] == SETTLED_STATUS[fault]
                for order_id, fault in injected.items()
            )

    eventually(settled, timeout=120, interval=1)
    return injected


def _settled_funnel() -> dict[str, float]:
    """The funnel once two reads 12 s apart agree (span metrics flush every 5 s, scrapes every
    5 s, the recording rules every 10 s)."""
    previous: dict[str, float] = {}

    def unchanged() -> dict[str, float] | None:
        nonlocal previous
        now = funnel()
        same, previous = now == previous, now
        return now if same and len(now) == 4 else None

    return eventually(unchanged, timeout=120, interval=12)


def otel_kit_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "otel-kit"), *args], capture_output=True, text=True, check=False
    )
