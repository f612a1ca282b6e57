"""stdlib logging: every record carries the ids of the span it was written in."""

import json
import logging
import re

import pytest
from opentelemetry import trace

from tests.helpers import run_python


def test_records_carry_trace_and_span_ids(spans, caplog):
    with caplog.at_level(logging.INFO), trace.get_tracer("t").start_as_current_span("work") as span:
        logging.getLogger("shop").info("order placed")
    (record,) = [r for r in caplog.records if r.getMessage() == "order placed"]
    assert record.otelTraceID == format(span.get_span_context().trace_id, "032x")
    assert record.otelSpanID == format(span.get_span_context().span_id, "016x")
    assert record.otelServiceName == "unit"


def test_records_outside_a_span_have_zero_ids(kit, caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("shop").info("idle")
    (record,) = [r for r in caplog.records if r.getMessage() == "idle"]
    assert record.otelTraceID == "0"


# What the app's logging prints to stderr with the kit exporting its records, per setup:
# what Python prints without the kit (the kit's OTLP handler on the root logger used to
# silence all of it, the kit's own warnings included, where logging was not configured).
STDERR = {
    "not configured": ["app error", "root warning"],
    "basicConfig before init": ["BEFORE app error", "BEFORE root warning"],
    "basicConfig after init": ["AFTER app info", "AFTER app error", "AFTER root warning"],
    "a handler of its own": ["OWN app error", "root warning"],
    "dictConfig of other loggers (uvicorn's)": ["app error", "root warning"],
    "lastResort set to None": [],
}
SETUP = {
    "basicConfig before init": ('logging.basicConfig(format="BEFORE %(message)s")', ""),
    "basicConfig after init": ("", 'logging.basicConfig(format="AFTER %(message)s", level=logging.INFO)'),
    "a handler of its own": (
        'h = logging.StreamHandler(); h.setFormatter(logging.Formatter("OWN %(message)s"));'
        ' logging.getLogger("app").addHandler(h)',
        "",
    ),
    "dictConfig of other loggers (uvicorn's)": (
        "",
        'logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,'
        ' "loggers": {"uvicorn": {"level": "INFO"}}})',
    ),
    "lastResort set to None": ("", "logging.lastResort = None"),
}


@pytest.mark.parametrize("setup", STDERR)
def test_the_app_logs_to_stderr_as_without_the_kit(setup):
    before, after = SETUP.get(setup, ("", ""))
    result = run_python(
        f"""
        import logging, logging.config, otel_kit
        {before}
        otel_kit.init("shop", metrics_exporter="none", traces_exporter="none", logs_exporter="console")
        {after}
        logging.getLogger("app").info("app info")
        logging.getLogger("app").error("app error")
        logging.warning("root warning")
        """  # flushed at exit: the stopped SDK printed its own records then (after basicConfig)
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == STDERR[setup]
    assert '"body": "app error"' in result.stdout  # and exported all the same


def test_the_kits_own_warnings_reach_stderr_where_logging_is_not_configured():
    result = run_python(
        """
        import logging, otel_kit
        otel_kit.init("shop", metrics_exporter="none", traces_exporter="none", logs_exporter="console")
        otel_kit.init("crm", metrics_exporter="none", traces_exporter="none", logs_exporter="console")
        """
    )
    assert "init() already ran; these new settings are ignored" in result.stderr


def test_a_log_storm_with_the_collector_down_is_counted_and_said_with_its_number(refusing_collector):
    """The app's records still print; the drops are counted on /metrics and said by the kit
    with their number, and nothing about the handler's recursion (the drop warning is logged
    inside it)."""
    queue = 8
    result = run_python(
        """
        import logging, otel_kit
        from prometheus_client import generate_latest
        otel_kit.init("shop", traces_exporter="none")
        for i in range(100):
            logging.getLogger("app").warning("order %d failed", i)
        print(generate_latest().decode())
        """,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{refusing_collector}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "30",  # the first batch is still being retried at exit
            "OTEL_BLRP_MAX_QUEUE_SIZE": str(queue),
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": str(queue),
            "OTEL_KIT_SHUTDOWN_TIMEOUT": "1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": "0",
        },
    )
    assert result.returncode == 0, result.stderr
    (counted,) = [
        float(line.rsplit(" ", 1)[1])
        for line in result.stdout.splitlines()
        if line.startswith('otel_sdk_processor_log_processed_total{error_type="queue_full"')
    ]
    assert counted > 0  # on /metrics too (added to the counter once a second)
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("order ")] == [f"order {i} failed" for i in range(100)]
    said = re.findall(r"log records dropped since the last such warning: (\d+)", result.stderr)
    counts = [int(count) for count in said]
    assert len(counts) == 2  # the first drop, then the rest at exit
    # What is neither queued (8) nor in the batch being retried (up to 8) was dropped; so may
    # be the SDK's own warnings about the dead collector, records too, all printed as well.
    others = [line for line in lines if not line.startswith("order ") and "dropped since" not in line]
    assert 100 - 2 * queue <= sum(counts) <= 100 - queue + len(others)
    assert "Queue full" not in result.stderr
    assert "recursive logging" not in result.stderr


def test_records_carry_the_order_id_as_spans_do():
    result = run_python(
        """
        import logging, otel_kit
        otel_kit.init("unit", traces_exporter="none", metrics_exporter="none", logs_exporter="console")
        with otel_kit.order("ord-7"):
            logging.getLogger("shop").warning("order accepted")
        logging.getLogger("shop").warning("no order here")
        otel_kit.shutdown()
        """
    )
    assert result.returncode == 0, result.stderr
    records = {r["body"]: r["attributes"] for r in _json_objects(result.stdout)}
    assert records["order accepted"]["order.id"] == "ord-7"
    assert "order.id" not in records["no order here"]


def _json_objects(text: str) -> list[dict]:
    """The console exporter's records: indented JSON objects one after another."""
    decoder, objects, at = json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) != -1:
        found, at = decoder.raw_decode(text, start)
        objects.append(found)
    return objects
