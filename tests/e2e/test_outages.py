"""Real outages, one at a time: a plain order placed while a part is down, and what `otel-kit
trace` says of it: the service it failed at, the peer it could not reach, and why.

Each part is stopped the way an operator would (the example's process, or `deploy/local/stack
stop NAME`) and started again before the next case, whatever the test's outcome.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Examples, otel_kit_cli
from tests.stack_fixtures import STACK, eventually

pytestmark = pytest.mark.timeout(300)


@contextlib.contextmanager
def stack_server_down(name: str) -> Iterator[None]:
    subprocess.run([str(STACK), "stop", name], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([str(STACK), "start", name], check=True, capture_output=True)


@contextlib.contextmanager
def example_down(examples: Examples, name: str) -> Iterator[None]:
    examples.executors[name].stop()
    try:
        yield
    finally:
        examples.executors[name].start()


def place_order(examples: Examples) -> str:
    body = {"customer_id": "cust-outage", "items": [{"sku": "gear", "quantity": 1}], "fault": None}
    response = httpx.post(f"{examples.urls['shop']}/orders", json=body, timeout=10)
    assert response.status_code in (200, 201), response.text
    return response.json()["id"]


def status_of(examples: Examples, order_id: str) -> str:
    return httpx.get(f"{examples.urls['shop']}/orders/{order_id}", timeout=10).json()["status"]


def verdict_of(order_id: str, outcome: str) -> dict:
    """`otel-kit trace --json`, once the order's spans have reached Jaeger with that outcome."""

    def read() -> dict | None:
        found = json.loads(otel_kit_cli("trace", order_id, "--json").stdout)
        return found if found["outcome"] == outcome else None

    return eventually(read, timeout=60, interval=1)


@pytest.fixture(scope="module")
def served(examples: Examples) -> Examples:
    """The examples after one healthy order: each service has answered at its address, as
    running services have, so that its traces can say who serves there."""
    order_id = place_order(examples)
    eventually(lambda: status_of(examples, order_id) == "completed", timeout=60, interval=0.5)
    verdict_of(order_id, "completed")
    return examples


@pytest.mark.parametrize(
    ("down", "service", "step", "peer", "why"),
    [
        ("crm", "mes", "POST", "crm", "unreachable (connection refused)"),
        ("postgres-mes", "mes", "connect", "postgresql db mes", "unreachable (connection refused)"),
        ("minio", "mes", "S3.PutObject", "S3", "unreachable"),
    ],
)
def test_an_order_failed_by_an_outage_names_the_peer_and_the_cause(
    served: Examples, down: str, service: str, step: str, peer: str, why: str
) -> None:
    examples = served
    outage = example_down(examples, down) if down in examples.executors else stack_server_down(down)
    with outage:
        order_id = place_order(examples)
        eventually(lambda: status_of(examples, order_id) == "failed", timeout=60, interval=0.5)
    found = verdict_of(order_id, "failed")
    assert (found["service"], found["step"], found["peer"]) == (service, step, peer), found
    assert found["reason"].startswith(why), found
    assert "dead-lettered: rejected from queue mes.order-created" in found["reason"], found
    # The MES's error log line about the order (Elasticsearch), quoted by the verdict.
    logged = eventually(lambda: verdict_of(order_id, "failed")["logged_cause"], timeout=30, interval=1)
    assert (logged["service"], logged["order_id"]) == ("mes", order_id), logged
    assert logged["message"].startswith(f"order {order_id} failed: "), logged
    summary = otel_kit_cli("trace", order_id).stdout
    assert f"failed at {service} -> {peer}: {step}" in " ".join(summary.split())


def test_an_order_placed_while_mes_is_down_is_stuck_then_completes_when_it_returns(
    served: Examples,
) -> None:
    examples = served
    with example_down(examples, "mes"):
        order_id = place_order(examples)
        found = verdict_of(order_id, "stuck")
        assert (found["service"], found["step"]) == ("shop", "orders send"), found
        assert "no service consumed it" in found["reason"]
        assert status_of(examples, order_id) == "created"
    eventually(lambda: status_of(examples, order_id) == "completed", timeout=60, interval=0.5)
    assert verdict_of(order_id, "completed")["outcome"] == "completed"
