"""Shutdown and the flush at exit end within OTEL_KIT_SHUTDOWN_TIMEOUT, whatever the collector does."""

from __future__ import annotations

import os

import pytest

from tests.helpers import run_python

# Spans and log records queued at exit, for a collector that refuses connections or one that
# accepts them and never answers. Each exporter may retry for OTEL_EXPORTER_OTLP_TIMEOUT (30 s
# here), batch after batch and signal after signal: the SDK's own exit hooks took minutes.
APP = """
import logging, os, otel_kit
from opentelemetry import trace
kit = otel_kit.init("shop", metrics_exporter="none")
for i in range(1500):
    with trace.get_tracer("t").start_as_current_span("work"):
        logging.getLogger("app").warning("order %d", i)
child = kit.providers.span_processor._exporter._proc
print(child.pid if child else "none", flush=True)
"""


@pytest.mark.parametrize(
    ("collector", "protocol", "export_process"),
    [
        ("refusing_collector", "grpc", "auto"),
        ("refusing_collector", "http/protobuf", "auto"),
        ("silent_collector", "grpc", "true"),
        ("silent_collector", "http/protobuf", "true"),
    ],
)
def test_a_dead_collector_does_not_hold_the_exit(request, collector, protocol, export_process):
    port = request.getfixturevalue(collector)
    result = run_python(
        APP,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "30",
            "OTEL_KIT_EXPORT_PROCESS": export_process,
            "OTEL_KIT_SHUTDOWN_TIMEOUT": "1",
        },
        timeout=25,  # a hang guard: past 1 s the exporters stop; before, the exit took minutes
    )
    assert result.returncode == 0, result.stderr
    assert "traces and logs not all sent within OTEL_KIT_SHUTDOWN_TIMEOUT=1s" in result.stderr
    child = result.stdout.split()[-1]
    assert (child == "none") == (export_process == "auto")
    if child != "none":  # killed, not left retrying on its own after the service exited
        with pytest.raises(ProcessLookupError):
            os.kill(int(child), 0)


def test_a_dead_collector_leaves_no_sdk_noise_at_exit(refusing_collector):
    """Logging configured after init() at INFO: the SDK's exporters log while they give up.

    The SDK stopped the log provider first and the tracer provider after, whose exporter's
    records then reached the stopped log provider: "Shutdown called, ignoring Log." and
    "detected recursive logging" were printed at every exit.
    """
    result = run_python(
        """
        import logging, otel_kit
        from opentelemetry import trace
        otel_kit.init("shop", metrics_exporter="none")
        logging.basicConfig(level=logging.INFO)
        with trace.get_tracer("t").start_as_current_span("work"):
            logging.getLogger("app").warning("order placed")
        """,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{refusing_collector}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        },
    )
    assert result.returncode == 0, result.stderr
    assert f"to 127.0.0.1:{refusing_collector}" in result.stderr  # the exporters logged as they gave up
    assert "Shutdown called" not in result.stderr
    assert "recursive logging" not in result.stderr
