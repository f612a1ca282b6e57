"""Three small services sending to the local stack (the stack itself: tests/stack_fixtures.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.integration.servers import free_port
from tests.stack_fixtures import start_app


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
        executors.append(start_app("tests.stack.services:app", ports[name], env, logs / f"{name}.log"))
    yield Services(urls["shop"], urls["mes"], urls["crm"], queue)
    for executor in executors:
        executor.stop()
