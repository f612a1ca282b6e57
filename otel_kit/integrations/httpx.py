"""Client spans for `httpx`, sync and async clients alike."""

from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from otel_kit._settings import Settings


def instrument(settings: Settings) -> None:
    HTTPXClientInstrumentor().instrument()
