"""Server spans and HTTP metrics for every FastAPI app, whenever and however it was imported.

Contrib's global `instrument()` swaps the `fastapi.FastAPI` class, which misses apps built
from an earlier `from fastapi import FastAPI`. Starlette builds an app's middleware stack on
its first request, so instrumenting there catches every app created before or after init.
"""

from __future__ import annotations

from typing import Any

import fastapi
import wrapt
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.propagators import TraceResponsePropagator, set_global_response_propagator

from otel_kit._edge import UntrustedContextMiddleware, link_untrusted_parent
from otel_kit._settings import Settings

_settings: Settings | None = None


def instrument(settings: Settings) -> None:
    global _settings
    _settings = settings
    # W3C Trace Context Level 2 `traceresponse`: support finds a request by the id in its response.
    set_global_response_propagator(TraceResponsePropagator())
    if not isinstance(fastapi.FastAPI.build_middleware_stack, wrapt.FunctionWrapper):
        wrapt.wrap_function_wrapper(fastapi.FastAPI, "build_middleware_stack", _build_middleware_stack)


def instrument_app(app: fastapi.FastAPI) -> None:
    """Instrument one app (`otel_kit.init(app=app)`); a no-op if it already is."""
    if _settings is None or getattr(app, "_is_instrumented_by_opentelemetry", False):
        return
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=_settings.excluded_urls,
        # The per-message "http send"/"http receive" spans cost ~25% of a request and say nothing.
        exclude_spans=["receive", "send"],
        server_request_hook=None if _settings.trust_incoming_context else link_untrusted_parent,
    )
    if not _settings.trust_incoming_context:
        instrumented_build = app.build_middleware_stack

        def build_with_edge() -> Any:
            return UntrustedContextMiddleware(instrumented_build())

        app.build_middleware_stack = build_with_edge  # type: ignore[method-assign]
    # A stack built before instrumenting is rebuilt on the next request.
    app.middleware_stack = None


def _build_middleware_stack(wrapped: Any, app: fastapi.FastAPI, args: tuple, kwargs: dict) -> Any:
    if _settings is not None and not getattr(app, "_is_instrumented_by_opentelemetry", False):
        instrument_app(app)
        return app.build_middleware_stack()
    return wrapped(*args, **kwargs)
