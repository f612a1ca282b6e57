"""Telemetry never breaks the service: a dead collector or a restarted broker costs spans, not requests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from mirakuru import HTTPExecutor

from tests.integration.servers import Server, free_port

ROOT = Path(__file__).parents[2]


@contextmanager
def shop_service(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "tests.integration.shop_service:app", "--port", str(port)]
    executor = HTTPExecutor(
        command, url=f"http://127.0.0.1:{port}/health", method="GET", cwd=str(ROOT), timeout=60, envvars=env
    )
    with executor:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def service_env(dsn: str, rabbitmq: Server) -> dict[str, str]:
    dead = free_port()  # nothing listens here: the collector is down
    return {
        "SHOP_DSN": dsn,
        "SHOP_AMQP_PORT": str(rabbitmq.port),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead}",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(free_port()),
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
    }


def test_dead_collector_costs_spans_not_requests_and_drops_are_counted(service_env):
    env = {**service_env, "OTEL_BSP_MAX_QUEUE_SIZE": "64", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "32"}
    with shop_service(env) as url, httpx.Client(base_url=url, timeout=5) as client:
        statuses = [client.post(f"/orders/DEAD-{i}").status_code for i in range(200)]
        metrics = httpx.get(f"http://127.0.0.1:{env['OTEL_EXPORTER_PROMETHEUS_PORT']}/metrics").text
    assert statuses == [200] * 200
    dropped = [
        line
        for line in metrics.splitlines()
        if line.startswith("otel_sdk_processor_span_processed") and 'error_type="queue_full"' in line
    ]
    assert dropped, "span drops on a full queue are not visible in /metrics"
    assert float(dropped[0].rsplit(" ", 1)[1]) > 0


def test_broker_restart_mid_run_every_request_is_answered(service_env, rabbitmq):
    with shop_service(service_env) as url, httpx.Client(base_url=url, timeout=10) as client:
        before = [client.post(f"/orders/UP-{i}").status_code for i in range(20)]
        rabbitmq.executor.stop()
        during = [client.post(f"/orders/DOWN-{i}").status_code for i in range(10)]
        rabbitmq.executor.start()
        after = [client.post(f"/orders/BACK-{i}").status_code for i in range(20)]
    assert before == [200] * 20
    assert set(during) == {503}  # the service's own answer; no hang, no crash, no 500 from telemetry
    assert after == [200] * 20
