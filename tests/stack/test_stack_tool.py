"""deploy/local/stack: a clear message instead of a half-started stack; traces survive a
restart of Jaeger; a restart shows no series of the last run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.helpers import run_python
from tests.stack.conftest import Services
from tests.stack.test_stack import CRM_ROUTE
from tests.stack_fixtures import REPO, STACK, eventually, prom_query

OTEL_KIT = str(Path(sys.executable).parent / "otel-kit")


def test_a_missing_binary_is_named_with_where_it_comes_from(tmp_path) -> None:
    env = {
        **os.environ,
        "OTEL_KIT_STACK_DIR": str(tmp_path),
        "OTEL_KIT_MINIO_BIN": str(tmp_path / "no-minio-here"),
        "OTEL_KIT_JAEGER_BIN": str(tmp_path / "no-jaeger-here"),
        "OTEL_KIT_OTELCOL_BIN": str(tmp_path / "no-otelcol-here"),
    }
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy/local/stack.py"), "start"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert f"minio: {tmp_path / 'no-minio-here'} (from MinIO from its Go module" in message
    assert "jaeger:" in message
    assert "otelcol:" in message
    assert "run deploy/local/stack setup" in message
    assert not (tmp_path / "data").exists()  # nothing was started or created


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL and Elasticsearch as other users")
def test_a_stack_folder_other_users_cannot_enter_is_refused_naming_the_setting(tmp_path) -> None:
    closed = tmp_path / "closed"
    (closed / "es/bin").mkdir(parents=True)
    (closed / "es/bin/elasticsearch").touch()
    closed.chmod(0o700)
    env = {
        **os.environ,
        "OTEL_KIT_STACK_DIR": str(closed / "stack"),
        **{
            name: "/bin/true"
            for name in (
                "OTEL_KIT_MINIO_BIN",
                "OTEL_KIT_JAEGER_BIN",
                "OTEL_KIT_OTELCOL_BIN",
                "OTEL_KIT_LABEL_PROXY_BIN",
            )
        },
        "OTEL_KIT_ELASTICSEARCH_HOME": str(closed / "es"),
    }
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy/local/stack.py"), "setup"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert f"is inside {closed}, which other users cannot enter" in message
    assert "set OTEL_KIT_STACK_DIR" in message
    assert not (closed / "stack").exists()


def _order_path(order_id: str) -> list[tuple[str, str]] | None:
    """The order's whole path as `otel-kit trace` reads it from Jaeger, once it is complete."""
    done = f"crm:POST {CRM_ROUTE}"
    result = subprocess.run(
        [OTEL_KIT, "trace", order_id, "--json", "--done", done, "--lookback", "1h"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    steps = json.loads(result.stdout)["timeline"]
    return sorted((step["service"], step["operation"]) for step in steps) if len(steps) == 6 else None


@pytest.mark.timeout(300)
def test_an_order_is_still_found_whole_after_jaeger_restarts(services: Services) -> None:
    order_id = f"restart-{uuid.uuid4().hex[:8]}"
    response = httpx.post(f"{services.shop}/orders", json={"id": order_id, "user": "u1"}, timeout=10)
    assert response.status_code == 201, response.text
    before = eventually(lambda: _order_path(order_id), timeout=60)
    for command in ("stop", "start"):
        subprocess.run([str(STACK), command, "jaeger"], check=True, capture_output=True)
    assert _order_path(order_id) == before  # read from Badger's files, not from memory


@pytest.mark.timeout(300)
def test_a_restart_leaves_no_series_of_the_last_run_in_queries(stack: None) -> None:
    """Prometheus marks series stale when a scrape fails, not when it stops itself: stopped
    with the collector, the last run's span metrics (each carrying its service_instance_id)
    stayed in every sum for 5 minutes after the next start, and the order funnel with them.
    Runs last of the stack tests: the stack restarts."""
    service = f"restart-{uuid.uuid4().hex[:8]}"
    result = run_python(
        """
        import otel_kit
        from opentelemetry import trace
        otel_kit.init(metrics_exporter="none", logs_exporter="none")
        trace.get_tracer("t").start_span("one").end()
        otel_kit.shutdown()
        """,
        env={"OTEL_SERVICE_NAME": service, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"},
    )
    assert result.returncode == 0, result.stderr
    query = f'traces_span_metrics_calls_total{{service_name="{service}"}}'
    eventually(lambda: prom_query(query), timeout=60)
    subprocess.run([str(STACK), "stop"], check=True, capture_output=True)
    subprocess.run([str(STACK), "start"], check=True, capture_output=True)
    assert prom_query(query) == []
