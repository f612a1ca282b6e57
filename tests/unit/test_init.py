"""init() as a whole process sees it: each case in a fresh interpreter."""

import json
import socket

import pytest

from otel_kit import ConfigError, integrations
from otel_kit._config.settings import resolve
from tests.helpers import run_python
from tests.integration.servers import free_port


def test_second_call_returns_same_handle_and_warns_when_settings_differ():
    result = run_python(
        """
        import otel_kit
        first = otel_kit.init("shop", metrics_exporter="none", traces_exporter="none", logs_exporter="none")
        again = otel_kit.init("shop", metrics_exporter="none", traces_exporter="none", logs_exporter="none")
        other = otel_kit.init("crm", metrics_exporter="none", traces_exporter="none", logs_exporter="none")
        print(first is again is other, first.settings.service_name)
        """
    )
    assert result.stdout.split() == ["True", "shop"], result.stderr
    assert "init() already ran; these new settings are ignored: {'service_name': 'crm'}" in result.stderr
    assert result.stderr.count("already ran") == 1


def test_sdk_disabled_makes_everything_a_no_op():
    result = run_python(
        """
        import otel_kit
        from opentelemetry import trace
        kit = otel_kit.init("shop")
        with otel_kit.order("A-1"):
            span = trace.get_tracer("t").start_span("x")
        print(kit.enabled, kit.instrumented, span.is_recording(), kit.metrics_port)
        """,
        env={"OTEL_SDK_DISABLED": "true"},
    )
    assert result.stdout.split() == ["False", "[]", "False", "None"], result.stderr


def test_resource_names_the_service_instance_and_process():
    result = run_python(
        """
        import json, os, otel_kit
        kit = otel_kit.init("mes", traces_exporter="none", logs_exporter="none", metrics_exporter="none")
        attrs = dict(kit.providers.tracer_provider.resource.attributes)
        print(json.dumps({**attrs, "pid": os.getpid()}))
        """,
        env={
            "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=factory,team=ops",
            "OTEL_KIT_ENVIRONMENT": "test",
        },
    )
    attrs = json.loads(result.stdout)
    assert attrs["service.name"] == "mes"
    assert attrs["service.namespace"] == "factory"
    assert attrs["team"] == "ops"
    assert attrs["deployment.environment.name"] == "test"
    assert attrs["service.instance.id"] == f"{socket.gethostname()}-{attrs['pid']}"
    assert attrs["process.pid"] == attrs["pid"]
    assert attrs["host.name"] == socket.gethostname()
    assert "process.command_line" not in attrs  # arguments can hold secrets


def test_taken_metrics_port_is_a_warning_not_a_crash():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_python(
            f"""
            import otel_kit
            kit = otel_kit.init("shop", traces_exporter="none", logs_exporter="none",
                                prometheus_host="127.0.0.1", prometheus_port={port})
            print("alive", kit.metrics_port)
            """
        )
    assert result.stdout.split() == ["alive", "None"], result.stderr
    assert f"metrics not served: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "OTEL_EXPORTER_PROMETHEUS_PORT" in result.stderr


def test_exit_with_dead_collector_is_prompt_and_clean():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = run_python(
        """
        import time, otel_kit
        from opentelemetry import trace
        otel_kit.init("shop", metrics_exporter="none")
        with trace.get_tracer("t").start_as_current_span("work"):
            pass
        start = time.monotonic()
        otel_kit.shutdown()
        print(f"{time.monotonic() - start:.1f}")
        """,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_TIMEOUT": "2"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 10


def test_init_in_a_forked_worker_warns_to_initialise_per_worker():
    result = run_python(
        """
        import os, sys, otel_kit
        otel_kit.init("shop", traces_exporter="none", logs_exporter="none", metrics_exporter="none")
        pid = os.fork()
        if pid == 0:
            otel_kit.init("shop", traces_exporter="none", logs_exporter="none", metrics_exporter="none")
            sys.stderr.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        """
    )
    assert "before this worker was forked" in result.stderr


def test_requested_integration_without_its_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(integrations, "_importable", lambda module: module != "pika")
    with pytest.raises(
        ConfigError, match=r"asks for 'pika' but pika is not installed: pip install 'otel-kit\[pika\]'"
    ):
        integrations.select(resolve({"service_name": "shop", "instrumentations": "pika"}, {}))


def test_auto_detected_integration_without_its_library_is_quiet(monkeypatch, caplog):
    monkeypatch.setattr(integrations, "_importable", lambda module: module != "pika")
    chosen = integrations.select(resolve({"service_name": "shop"}, {}))
    assert "pika" not in [i.name for i in chosen]
    assert "fastapi" in [i.name for i in chosen]
    assert caplog.records == []


def test_library_without_its_instrumentor_warns_with_the_extra(monkeypatch, caplog):
    monkeypatch.setattr(integrations, "_importable", lambda m: m != "opentelemetry.instrumentation.pika")
    integrations.select(resolve({"service_name": "shop"}, {}))
    assert "pip install 'otel-kit[pika]'" in caplog.text


def test_disabled_instrumentations_always_win():
    settings = resolve(
        {"service_name": "shop", "instrumentations": "pika,httpx"},
        {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "pika"},
    )
    assert [i.name for i in integrations.select(settings)] == ["httpx"]


def test_a_disabled_instrumentation_no_one_is_called_is_a_warning(caplog):
    environ = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "psycog2,redis,system-metrics,pika"}
    chosen = [i.name for i in integrations.select(resolve({"service_name": "shop"}, environ))]
    assert {"psycopg2", "system_metrics"} <= set(chosen)  # the misspelt names disabled nothing
    assert "pika" not in chosen
    # redis is a contrib instrumentation, installed or not: no typo.
    assert [record.getMessage() for record in caplog.records] == [
        "otel_kit: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS names 'psycog2', which disables nothing "
        "(no instrumentation has that name); did you mean psycopg2?",
        "otel_kit: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS names 'system-metrics', which disables nothing "
        "(no instrumentation has that name); did you mean system_metrics?",
    ]


def test_failing_integration_is_logged_and_skipped(monkeypatch, caplog):
    broken = integrations.Integration("broken", None, None, None)
    assert integrations.enable([broken], resolve({"service_name": "shop"}, {})) == []
    assert "broken instrumentation failed and is off" in caplog.text


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # The SDK's own checks, which raised a ValueError (the first two from an import),
        # its exporter's exception, or a ConfigError naming other settings.
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "64"}, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512) is larger than"),
        ({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "x"}, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT='x' is not valid"),
        ({"OTEL_PROPAGATORS": "tracecontext,b3"}, "OTEL_PROPAGATORS='tracecontext,b3' is not valid"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "zip"}, "OTEL_EXPORTER_OTLP_COMPRESSION='zip' is not valid"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT='10s' is not valid"),
    ],
)
def test_a_bad_sdk_variable_is_a_config_error_naming_it(env, message):
    result = run_python(
        """
        import otel_kit
        try:
            otel_kit.init("shop", metrics_exporter="none")
        except Exception as error:
            print(type(error).__name__, error)
        """,
        env=env,
    )
    assert result.stdout.startswith(f"ConfigError {message}"), result.stdout + result.stderr


@pytest.mark.parametrize(("env", "expected"), [({}, "1000"), ({"OTEL_BSP_SCHEDULE_DELAY": "250"}, "250")])
def test_spans_are_exported_every_second_unless_the_env_says_otherwise(env, expected):
    result = run_python(
        """
        import otel_kit
        from opentelemetry import trace
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        otel_kit.init("shop", metrics_exporter="none")
        [batch] = [p for p in trace.get_tracer_provider()._active_span_processor._span_processors
                   if isinstance(p, BatchSpanProcessor)]
        print(int(batch._batch_processor._schedule_delay_millis))
        """,
        env=env,
    )
    assert result.stdout.strip() == expected, result.stderr


@pytest.mark.parametrize(
    ("metrics_exporter", "environ", "expected"),
    [
        ("prometheus", {}, "AlwaysOffExemplarFilter"),  # its exposition carries no exemplars
        ("prometheus", {"OTEL_METRICS_EXEMPLAR_FILTER": "always_on"}, "AlwaysOnExemplarFilter"),
        ("otlp", {}, "TraceBasedExemplarFilter"),
    ],
)
def test_exemplars_are_sampled_only_where_they_can_go(metrics_exporter, environ, expected):
    result = run_python(
        f"""
        import otel_kit
        kit = otel_kit.init("shop", metrics_exporter="{metrics_exporter}", prometheus_port=0,
                            traces_exporter="none", logs_exporter="none")
        print(type(kit.providers.meter_provider._sdk_config.exemplar_filter).__name__)
        otel_kit.shutdown()
        """,
        # Nothing listens there: OTLP metrics' last export at shutdown gives up after 1 s, not 10.
        env={
            **environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        },
    )
    assert result.stdout.split() == [expected], result.stderr


def test_a_signal_with_nowhere_to_go_costs_nothing():
    """Metrics and logs off: the API's no-op providers, so FastAPI's telemetry skips metering."""
    result = run_python(
        """
        import otel_kit
        from fastapi import FastAPI
        from fastapi.testclient import TestClient
        from opentelemetry import _logs, metrics, trace
        kit = otel_kit.init("shop", metrics_exporter="none", logs_exporter="none", traces_exporter="none")
        app = FastAPI()

        @app.get("/x")
        def x():
            return {"recording": trace.get_current_span().is_recording()}

        body = TestClient(app).get("/x").json()
        print(type(metrics.get_meter_provider()).__name__, type(_logs.get_logger_provider()).__name__,
              kit.providers.meter_provider, kit.providers.logger_provider, body["recording"])
        otel_kit.shutdown()
        """
    )
    assert result.stdout.split() == ["NoOpMeterProvider", "NoOpLoggerProvider", "None", "None", "True"], (
        result.stderr
    )


def test_a_misspelt_kit_variable_is_a_warning_at_init():
    result = run_python(
        """
        import otel_kit
        kit = otel_kit.init("shop", metrics_exporter="none", traces_exporter="none", logs_exporter="none")
        print(kit.settings.trust_incoming_context)
        """,
        env={"OTEL_KIT_TRUST_INCOMING_CONTEX": "false"},
    )
    assert result.stdout.split() == ["True"], result.stderr
    assert (
        "otel_kit: OTEL_KIT_TRUST_INCOMING_CONTEX is not an otel_kit setting and is ignored; "
        "did you mean OTEL_KIT_TRUST_INCOMING_CONTEXT?"
    ) in result.stderr
