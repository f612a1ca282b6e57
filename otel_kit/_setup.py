"""Resource, tracer / meter / logger providers and their exporters, built from Settings."""

from __future__ import annotations

# Imported before the TracerProvider exists: the provider's fork hook starts a
# ThreadPoolExecutor in the child, which deadlocks (a subprocess with preexec_fn never execs)
# unless this module's own fork hook, registered on import, has already freed its lock.
import concurrent.futures.thread  # noqa: F401
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
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
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from otel_kit._compat import (
    BatchLogRecordProcessor,
    BatchQueue,
    ConsoleLogRecordExporter,
    LoggerProvider,
    LogRecordExporter,
    NoOpLoggerProvider,
    ReadWriteLogRecord,
    set_logger_provider,
)
from otel_kit._config.settings import ConfigError, Settings
from otel_kit._context.incoming import guard_extraction
from otel_kit._export.child import AUTO_MIN_RATE, ProcessSpanExporter, usable_cores
from otel_kit._export.drops import Drops
from otel_kit._export.encoder import row_exporter
from otel_kit._export.processor import InProcessRowExporter, RowBatchSpanProcessor, RowExporter
from otel_kit._export.sdk_warnings import quiet_sdk_warnings
from otel_kit._export.split import log_exporter

_log = logging.getLogger("otel_kit")

_STOPPING_S = 0.5  # at most, before the shutdown deadline, for exporters to stop (Providers.shutdown)
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
    # The batch processors the kit made, whose shutdown it bounds.
    span_processor: RowBatchSpanProcessor | None = None
    log_processor: _LogProcessor | None = None
    _stopped: bool = field(default=False, init=False, repr=False)

    def _sdk_providers(self) -> list[TracerProvider | MeterProvider | LoggerProvider]:
        return [p for p in (self.tracer_provider, self.logger_provider, self.meter_provider) if p is not None]

    def force_flush(self, timeout_millis: int = 10_000) -> None:
        for provider in self._sdk_providers():
            provider.force_flush(timeout_millis)

    def shutdown(self, timeout_s: float) -> list[str]:
        """Flush and stop every signal at once, in `timeout_s` in all; the signals not done by then.

        Each exporter retries a dead collector for up to its timeout (OTEL_EXPORTER_OTLP_TIMEOUT,
        10 s), once for every batch still queued; the SDK's providers, each flushed at exit in
        turn, held a stopping service 16 s with the collector down (35 s with full queues).
        Past the deadline the exporters are stopped, ending their retries, and what they still
        hold is dropped. The SDK's shutdown takes no overall deadline, hence this
        (upstream: open-telemetry/opentelemetry-python#3309, #4043).
        """
        if self._stopped:
            return []
        self._stopped = True
        deadline = time.monotonic() + timeout_s
        # The exporters are stopped a moment before the deadline, so that the span export
        # child is killed by then rather than left retrying after the service has exited.
        stop_by = deadline - min(_STOPPING_S, timeout_s / 10)

        def left_ms() -> float:
            return max(0.0, stop_by - time.monotonic()) * 1000

        stops: dict[str, Callable[[], Any]] = {"traces": lambda: self._stop_traces(left_ms)}
        if self.logger_provider is not None:
            stops["logs"] = lambda: self._stop_logs(left_ms)
        if self.meter_provider is not None:
            meter_provider = self.meter_provider
            stops["metrics"] = lambda: meter_provider.shutdown(timeout_millis=left_ms())
        jobs = {name: _Stopping(name, stop) for name, stop in stops.items()}
        for job in jobs.values():
            job.wait(max(0.0, deadline - time.monotonic()))
        # A stop cut short ends at stop_by or later (the SDK waits for its worker until then);
        # one that ends before it has sent or given up on everything.
        return [name for name, job in jobs.items() if job.ended_at is None or job.ended_at >= stop_by]

    def _stop_traces(self, left_ms: Callable[[], float]) -> None:
        if self.span_processor is not None:
            self.span_processor.shutdown(timeout_millis=left_ms())
        self.tracer_provider.shutdown()  # the processors the app added (the kit's is stopped)

    def _stop_logs(self, left_ms: Callable[[], float]) -> None:
        if self.log_processor is not None:
            self.log_processor.shutdown(timeout_millis=left_ms())
        self.logger_provider.shutdown()  # type: ignore[union-attr]  # only called when there is one


class _Stopping(threading.Thread):
    """One signal's stop, in a daemon thread: one stuck on a silent collector must not hold the exit."""

    def __init__(self, name: str, stop: Callable[[], Any]) -> None:
        super().__init__(name=f"otel_kit shutdown: {name}", daemon=True)
        self._stop_signal = stop
        self.ended_at: float | None = None
        self._inline = False
        try:
            self.start()
        except RuntimeError:  # some 3.12 releases start no thread from an exit hook: one after another
            self._inline = True
            self.run()

    def wait(self, timeout: float) -> None:
        if not self._inline:
            self.join(timeout)

    def run(self) -> None:
        try:
            self._stop_signal()
        except Exception:  # a flush error at exit must not hide the app's own exit status
            _log.warning("otel_kit: %s failed", self.name, exc_info=True)
        self.ended_at = time.monotonic()


class _LogProcessor(BatchLogRecordProcessor):
    """The stock batch processor, saying what a full queue drops with how many (as the span
    one does), and whose shutdown takes a timeout."""

    def __init__(self, exporter: LogRecordExporter, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._export_queue = BatchQueue(self)
        self._drops = Drops(self._export_queue, "log export queue", "log records", "OTEL_BLRP_MAX_QUEUE_SIZE")

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        if self._export_queue.full():
            # The stock emit would log "Queue full, dropping Log." for every record, from inside
            # the logging handler exporting them; the oldest is pushed out here instead, as its
            # appendleft would, and counted.
            with suppress(IndexError):  # emptied by the export worker meanwhile
                self._export_queue.items.pop()  # the newest are on the left
                self._drops.add()
        elif self._drops.pending:
            self._drops.report()
        super().on_emit(log_record)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self._drops.report()
        return super().force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        self._drops.report(final=True)  # the drops not yet logged, whenever the last log was
        self._export_queue.batch.shutdown(timeout_millis)


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
    encoder.row_exporter, logs: split.log_exporter)."""
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


def _span_processor(settings: Settings, meters: metrics.MeterProvider) -> RowBatchSpanProcessor:
    endpoint = _endpoint_kwargs(settings, "traces")
    options: dict[str, Any] = {"schedule_delay_millis": _schedule_delay_ms(), "meter_provider": meters}

    def in_process() -> SpanExporter:
        return row_exporter(settings.otlp_protocol, **endpoint)

    # Every mode queues rows and encodes them with the kit's encoder (_export.encoder). On one
    # core `auto` is `false`: the child's CPU would come out of the service's own
    # (docs/design/span-export.md).
    mode = settings.export_process
    if mode == "auto" and usable_cores() < 2:
        mode = "false"
    with _counting_drops():
        if mode == "false":
            exporter: RowExporter = InProcessRowExporter(in_process)
        else:
            min_rate = AUTO_MIN_RATE if mode == "auto" else None
            exporter = ProcessSpanExporter(
                settings.otlp_protocol, endpoint.get("endpoint"), in_process, min_rate
            )
        return RowBatchSpanProcessor(exporter, **options)


def build(settings: Settings) -> Providers:
    """Create the providers and make them global."""
    try:
        return _build(settings)
    except ValueError as exc:  # a check of the SDK's own that check_sdk_environment does not make
        raise ConfigError(f"the OpenTelemetry SDK refused its OTEL_* settings: {exc}") from None


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

    An operator must see a dead collector as spans and log records dropped on a full queue
    (otel_sdk_processor_{span,log}_processed{error_type="queue_full"}); the SDK counts that only
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
        MeterProvider(
            resource=resource,
            metric_readers=readers,
            exemplar_filter=_exemplar_filter(settings),
            shutdown_on_exit=False,  # init() registers one bounded shutdown for every signal
        )
        if readers
        else None
    )
    meters = meter_provider or metrics.NoOpMeterProvider()

    tracer_provider = TracerProvider(resource=resource, sampler=_sampler(settings), shutdown_on_exit=False)
    from opentelemetry.processor.baggage import BaggageLogProcessor, BaggageSpanProcessor

    tracer_provider.add_span_processor(
        BaggageSpanProcessor(frozenset(settings.baggage_span_attributes).__contains__)
    )
    span_processor = None
    if settings.traces_exporter == "otlp":
        span_processor = _span_processor(settings, meters)
        tracer_provider.add_span_processor(span_processor)
    elif settings.traces_exporter == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))

    # Logs off: the no-op provider, so nothing (FastAPI's exception events included) builds
    # log records that go nowhere.
    logger_provider = None
    if settings.logs_exporter != "none":
        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        # order.id on every log record, as on every span: one order's logs found by its id.
        logger_provider.add_log_record_processor(
            BaggageLogProcessor(frozenset(settings.baggage_span_attributes).__contains__)
        )
    log_processor = None
    if settings.logs_exporter == "otlp":
        exporter = log_exporter(settings.otlp_protocol, **_endpoint_kwargs(settings, "logs"))
        with _counting_drops():
            log_processor = _LogProcessor(exporter, meter_provider=meters)
        logger_provider.add_log_record_processor(log_processor)
    elif settings.logs_exporter == "console":
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(ConsoleLogRecordExporter()))

    trace.set_tracer_provider(tracer_provider)
    guard_extraction()
    metrics.set_meter_provider(meters)
    set_logger_provider(logger_provider or NoOpLoggerProvider())
    return Providers(
        tracer_provider, meter_provider, logger_provider, metrics_port, span_processor, log_processor
    )
