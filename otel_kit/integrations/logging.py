"""stdlib logging: trace_id / span_id on every record, and records exported over OTLP."""

from opentelemetry.instrumentation.logging import LoggingInstrumentor

from otel_kit._settings import Settings


def instrument(settings: Settings) -> None:
    # inject_trace_context adds otelTraceID / otelSpanID / otelServiceName to every record
    # without touching the app's own log format; the handler sends records to the global
    # LoggerProvider (and so over OTLP) unless logs are off.
    LoggingInstrumentor().instrument(
        inject_trace_context=True,
        enable_log_auto_instrumentation=settings.logs_exporter != "none",
    )
