"""The whole local stack (deploy/local) for the session, and three services sending to it.

If the stack already runs (a demo, say) it is used and left running; otherwise it is
started here and stopped at the end. The tests measure increases of counters, so data that
was there before does not disturb them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from mirakuru import HTTPExecutor

from tests.integration.servers import free_port

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy/local/stack"
PROMETHEUS = "http://127.0.0.1:9090"
JAEGER = "http://127.0.0.1:16686"
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.5) -> T:
    """Poll until probe() returns something truthy: telemetry arrives asynchronously (batching,
    scrape intervals), so a test waits for the state it expects, up to a deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not reached within {timeout} s; last probe returned {last!r}")


def prom_query(query: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{PROMETHEUS}/api/v1/query", params={"query": query}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]["result"]


def prom_value(query: str) -> float:
    """The single value of an instant query, 0 when it has no series yet."""
    result = prom_query(query)
    assert len(result) <= 1, f"{query} matched several series: {result}"
    return float(result[0]["value"][1]) if result else 0.0


def jaeger_get(path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(f"{JAEGER}{path}", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="session")
def stack() -> Iterator[None]:
    already_up = subprocess.run([str(STACK), "status"], capture_output=True, check=False).returncode == 0
    if not already_up:
        subprocess.run([str(STACK), "start"], check=True)
    yield
    if not already_up:
        subprocess.run([str(STACK), "stop"], check=True)


@dataclass
class Services:
    shop: str
    mes: str
    crm: str
    queue: str


@pytest.fixture(scope="session")
def services(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """shop -> RabbitMQ -> mes -> HTTP -> crm, each a uvicorn process exporting to the collector."""
    queue = f"stack-test.{uuid.uuid4().hex[:8]}.order.created"
    logs = tmp_path_factory.mktemp("services")
    ports = {name: free_port() for name in ("shop", "mes", "crm")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    executors = []
    for name in ("crm", "mes", "shop"):
        env = {
            **base_env,
            "STACK_SERVICE": name,
            "STACK_QUEUE": queue,
            "STACK_CRM_URL": urls["crm"],
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
        command = [sys.executable, "-m", "uvicorn", "tests.stack.services:app", "--port", str(ports[name])]
        executor = HTTPExecutor(
            command,
            url=f"{urls[name]}/health",
            method="GET",
            timeout=60,
            envvars=env,
            cwd=str(REPO),
            stdout=(logs / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        executor.start()
        executors.append(executor)
    yield Services(urls["shop"], urls["mes"], urls["crm"], queue)
    for executor in executors:
        executor.stop()
