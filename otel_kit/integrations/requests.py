"""Client spans for `requests`, with trace context and baggage injected into every call."""

from opentelemetry.instrumentation.requests import RequestsInstrumentor

from otel_kit._config.settings import Settings
from otel_kit.integrations._urls import redact_sigv4_parameters


def instrument(settings: Settings) -> None:
    redact_sigv4_parameters()
    RequestsInstrumentor().instrument()
