"""Resource, tracer / meter / logger providers and their exporters, built from Settings."""

from __future__ import annotations

# Imported before the TracerProvider exists: the provider's fork hook starts a
# ThreadPoolExecutor in the child, which deadlocks (a subprocess with preexec_fn never execs)
# unless this module's own fork hook, registered on import, has already freed its lock.
import concurrent.futures.thread  # noqa: F401
import logging
import math
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogRecordExporter
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import (
    OsResourceDetector,
    ProcessResourceDetector,
    Resource,
    get_aggregated_resources,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from otel_kit._export_process import AUTO_MIN_RATE, ProcessBatchSpanProcessor, ProcessSpanExporter
from otel_kit._fit import log_exporter
from otel_kit._incoming import guard_extraction
from otel_kit._otlp_rows import row_exporter
from otel_kit._quiet import quiet_sdk_warnings
from otel_kit._settings import ConfigError, Settings

_log = logging.getLogger("otel_kit")

# The process detector's full command line can carry secrets (DSNs, tokens) passed as
# arguments; the executable name and pid identify the process well enough.
_DROPPED_PROCESS_ATTRIBUTES = ("process.command_line", "process.command_args", "process.command")


@dataclass
class Providers:
    """The SDK providers made global; a signal with nowhere to go has none (the API's no-op)."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider | None
    logger_provider: LoggerProvider | None
    metrics_port: int | None

    def _sdk_providers(self) -> list[TracerProvider | MeterProvider | LoggerProvider]:
        return [p for p in (self.tracer_provider, self.logger_provider, self.meter_provider) if p is not None]

    def force_flush(self, timeout_millis: int = 10_000) -> None:
        for provider in self._sdk_providers():
            provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        for provider in self._sdk_providers():
            try:
                provider.shutdown()
            except Exception:  # a flush error at exit must not hide the app's own exit status
                _log.warning("otel_kit: %s shutdown failed", type(provider).__name__, exc_info=True)


def build_resource(settings: Settings) -> Resource:
    attributes: dict[str, str] = {
        "service.name": settings.service_name,
        "deployment.environment.name": settings.environment,
        "service.instance.id": _instance_id(),
    }
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    if settings.service_namespace:
        attributes["service.namespace"] = settings.service_namespace
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        attributes["k8s.pod.name"] = socket.gethostname()
    detected = get_aggregated_resources([ProcessResourceDetector(), OsResourceDetector()])
    kept = {k: v for k, v in detected.attributes.items() if k not in _DROPPED_PROCESS_ATTRIBUTES}
    kept["host.name"] = socket.gethostname()
    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES; our values win over it, and Settings
    # already gave the standard variables their precedence when resolving them.
    return Resource(kept).merge(Resource.create(attributes))


def _instance_id() -> str:
    """The pod name in Kubernetes (HOSTNAME is the pod), else host and pid."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return socket.gethostname()
    return f"{socket.gethostname()}-{os.getpid()}"


def _exemplar_filter(settings: Settings) -> ExemplarFilter:
    name = settings.metrics_exemplar_filter
    if name is None:
        name = "always_off" if settings.metrics_exporter == "prometheus" else "trace_based"
    return {
        "trace_based": TraceBasedExemplarFilter,
        "always_on": AlwaysOnExemplarFilter,
        "always_off": AlwaysOffExemplarFilter,
    }[name]()


def _sampler(settings: Settings) -> sampling.Sampler:
    ratio = sampling.TraceIdRatioBased(settings.sampler_arg)
    return {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": ratio,
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sampling.ParentBased(ratio),
    }[settings.sampler]


def _otlp_metric_exporter(protocol: str, **kwargs: Any) -> Any:
    """The OTLP metric exporter for `grpc` or `http/protobuf`, imported lazily (spans:
    _otlp_rows.row_exporter, logs: _fit.log_exporter)."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return OTLPMetricExporter(**kwargs)


def _endpoint_kwargs(settings: Settings, signal: str) -> dict[str, str]:
    """The exporters read OTEL_EXPORTER_OTLP_* themselves; only an init() argument needs passing."""
    if settings.otlp_endpoint is None or settings.otlp_endpoint == os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    ):
        return {}
    if settings.otlp_protocol == "grpc":
        return {"endpoint": settings.otlp_endpoint}
    return {"endpoint": f"{settings.otlp_endpoint.rstrip('/')}/v1/{signal}"}


def _metric_readers(settings: Settings) -> tuple[list[MetricReader], int | None]:
    if settings.metrics_exporter == "prometheus":
        return _prometheus_reader(settings)
    if settings.metrics_exporter == "otlp":
        exporter = _otlp_metric_exporter(settings.otlp_protocol, **_endpoint_kwargs(settings, "metrics"))
        return [PeriodicExportingMetricReader(exporter)], None
    if settings.metrics_exporter == "console":
        return [PeriodicExportingMetricReader(ConsoleMetricExporter())], None
    return [], None


def _prometheus_reader(settings: Settings) -> tuple[list[MetricReader], int | None]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(settings.prometheus_port, addr=settings.prometheus_host)
    except OSError as exc:
        # Several services share a host: a taken port costs this service its /metrics, never its life.
        _log.warning(
            "otel_kit: metrics not served: cannot listen on %s:%s (%s). Give each service its own port "
            "with OTEL_EXPORTER_PROMETHEUS_PORT (or OTEL_KIT_METRICS_PORT), or 0 for any free port.",
            settings.prometheus_host,
            settings.prometheus_port,
            exc.strerror or exc,
        )
        return [], None
    return [PrometheusMetricReader()], server.server_address[1]


def _span_processor(settings: Settings, meters: metrics.MeterProvider) -> SpanProcessor:
    endpoint = _endpoint_kwargs(settings, "traces")
    options: dict[str, Any] = {"schedule_delay_millis": _schedule_delay_ms(), "meter_provider": meters}

    def in_process() -> SpanExporter:
        return row_exporter(settings.otlp_protocol, **endpoint)

    # Every mode queues rows and encodes them with the kit's encoder (_otlp_rows); `false`
    # never reaches the rate that would start the child.
    min_rate = {"auto": AUTO_MIN_RATE, "true": None, "false": math.inf}[settings.export_process]
    with _counting_drops():
        exporter = ProcessSpanExporter(settings.otlp_protocol, endpoint.get("endpoint"), in_process, min_rate)
        return ProcessBatchSpanProcessor(exporter, **options)


def build(settings: Settings) -> Providers:
    """Create the providers and make them global."""
    try:
        return _build(settings)
    except ValueError as exc:  # the SDK's own check of OTEL_BSP_* / OTEL_BLRP_* values
        raise ConfigError(
            f"{exc} Check OTEL_BSP_MAX_QUEUE_SIZE / OTEL_BSP_MAX_EXPORT_BATCH_SIZE "
            "(and OTEL_BLRP_* for logs): the batch must fit in the queue."
        ) from None


def _schedule_delay_ms() -> float | None:
    """Export every second unless OTEL_BSP_SCHEDULE_DELAY says otherwise (the SDK waits 5 s).

    Support looks up a customer's order while the customer waits: with 5 s a span is not
    searchable in Jaeger for 5 s; with 1 s it is in 2 s, the collector's batch included
    (benchmarks/README.md). Under load batches fill before the delay anyway.
    """
    return None if os.environ.get("OTEL_BSP_SCHEDULE_DELAY") else 1000


@contextmanager
def _counting_drops() -> Iterator[None]:
    """Turn on the SDK's internal metrics for the batch processors built inside, and only them.

    An operator must see a dead collector as spans dropped on a full queue
    (otel_sdk_processor_span_processed{error_type="queue_full"}); the SDK counts that only
    under OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED. The same variable also makes every
    tracer count every span started and ended, which costs 5% of a trivial request, so it
    is set while the processors are built (they read it then) and restored afterwards.
    """
    name = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
    previous = os.environ.get(name)
    if previous is None:
        os.environ[name] = "true"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[name]


def _build(settings: Settings) -> Providers:
    quiet_sdk_warnings()
    resource = build_resource(settings)
    readers, metrics_port = _metric_readers(settings)
    # With no reader (metrics off, or the port taken) an SDK provider would still build and
    # aggregate every measurement: 5 per request, ~12% of a trivial request's CPU. The API's
    # no-op provider costs nothing, and FastAPI's own telemetry skips metering for it.
    meter_provider = (
        MeterProvider(resource=resource, metric_readers=readers, exemplar_filter=_exemplar_filter(settings))
        if readers
        else None
    )
    meters = meter_provider or metrics.NoOpMeterProvider()

    tracer_provider = TracerProvider(resource=resource, sampler=_sampler(settings))
    from opentelemetry.processor.baggage import BaggageSpanProcessor

    tracer_provider.add_span_processor(
        BaggageSpanProcessor(frozenset(settings.baggage_span_attributes).__contains__)
    )
    if settings.traces_exporter == "otlp":
        tracer_provider.add_span_processor(_span_processor(settings, meters))
    elif settings.traces_exporter == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))

    # Logs off: the no-op provider, so nothing (FastAPI's exception events included) builds
    # log records that go nowhere.
    logger_provider = LoggerProvider(resource=resource) if settings.logs_exporter != "none" else None
    if settings.logs_exporter == "otlp":
        exporter = log_exporter(settings.otlp_protocol, **_endpoint_kwargs(settings, "logs"))
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(exporter, meter_provider=meters))
    elif settings.logs_exporter == "console":
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(ConsoleLogRecordExporter()))

    trace.set_tracer_provider(tracer_provider)
    guard_extraction()
    metrics.set_meter_provider(meters)
    _logs.set_logger_provider(logger_provider or _logs.NoOpLoggerProvider())
    return Providers(tracer_provider, meter_provider, logger_provider, metrics_port)
