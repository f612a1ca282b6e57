"""Client spans for `requests`, with trace context and baggage injected into every call."""

from opentelemetry.instrumentation.requests import RequestsInstrumentor

from otel_kit._settings import Settings


def instrument(settings: Settings) -> None:
    RequestsInstrumentor().instrument()
