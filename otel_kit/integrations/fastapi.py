"""Server spans and HTTP metrics for every FastAPI app, whenever and however it was imported.

FastAPI releases with built-in telemetry (0.165 here; detected by the app's telemetry
config, not by version) have their own OpenTelemetry support (one server span, duration and
active-request metrics), measured here at 1.5x the throughput of contrib's ASGI middleware
(benchmarks/README.md). We use it, switched to what we need, and add the two things it
lacks: request/response body sizes and the `traceresponse` header. Older FastAPI gets
contrib's FastAPIInstrumentor, without its per-message send/receive spans.

Instrumenting happens when Starlette builds an app's middleware stack (its first request),
which catches apps created before init too; contrib's class swap would miss those.
"""

from __future__ import annotations

import functools
import re
import weakref
from typing import Any

import fastapi
import wrapt
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.propagators import TraceResponsePropagator, set_global_response_propagator

from otel_kit._compat import fastapi_telemetry_config
from otel_kit._config.settings import Settings
from otel_kit._context.edge import link_untrusted_parent, strip_untrusted_context

_settings: Settings | None = None
_instrumented: weakref.WeakSet[fastapi.FastAPI] = weakref.WeakSet()
_native: weakref.WeakSet[fastapi.FastAPI] = weakref.WeakSet()  # instrumented through FastAPI's telemetry
_edge_call: Any = None  # FastAPI.__call__ as _refuse_client_context replaced it
_traceresponse = TraceResponsePropagator()


def instrument(settings: Settings) -> None:
    global _settings
    _settings = settings
    set_global_response_propagator(_traceresponse)  # contrib's middleware reads it
    if not isinstance(fastapi.FastAPI.build_middleware_stack, wrapt.FunctionWrapper):
        wrapt.wrap_function_wrapper(fastapi.FastAPI, "build_middleware_stack", _build_middleware_stack)
    if not settings.trust_incoming_context:
        _refuse_client_context()


def instrument_app(app: fastapi.FastAPI) -> None:
    """Instrument one app (`otel_kit.init(app=app)`); a no-op if it already is."""
    if _settings is None or app in _instrumented:
        return
    _instrumented.add(app)
    if not _use_native(app):
        _instrument_with_contrib(app, _settings)
    app.middleware_stack = None  # a stack built before this is rebuilt on the next request


def _use_native(app: fastapi.FastAPI) -> bool:
    config = fastapi_telemetry_config(app)
    if config is None:
        return False
    # The same comma-separated regexes as contrib's parse_excluded_urls, compiled once and
    # searched directly: its ExcludeList goes through re.search's cache on every request.
    patterns = [p.strip() for p in (_settings.excluded_urls or "").split(",") if p.strip()]
    excluded = re.compile("|".join(patterns)).search if patterns else None
    config.update(
        # Spans for dependency resolution, the endpoint and serialisation: 20% of throughput.
        operation_spans=False,
        auto_configure=False,
        exclude=(lambda scope: excluded(scope.get("path", "")) is not None) if excluded else None,
    )
    _native.add(app)
    return True


def _instrument_with_contrib(app: fastapi.FastAPI, settings: Settings) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=settings.excluded_urls,
        # The per-message "http send"/"http receive" spans cost ~25% of a request and say nothing.
        exclude_spans=["receive", "send"],
        server_request_hook=link_untrusted_parent,
    )


def _build_middleware_stack(wrapped: Any, app: fastapi.FastAPI, args: tuple, kwargs: dict) -> Any:
    if _settings is not None and app not in _instrumented:
        instrument_app(app)
        return app.build_middleware_stack()
    stack = wrapped(*args, **kwargs)
    return _ServerExtras(stack) if app in _native else stack


def _refuse_client_context() -> None:
    """Strip client trace headers in `FastAPI.__call__`, before FastAPI's own telemetry reads them.

    A plain `async def` with the same signature, not a wrapt wrapper: servers tell an ASGI 3
    app by `iscoroutinefunction(app.__call__)` and uvicorn tries `app()` for a factory. An
    async wrapper returned a coroutine from `app()`, so uvicorn took it for a factory and
    answered 500 to every request; a wrapt proxy is no coroutine function to hypercorn.
    """
    global _edge_call
    original = fastapi.FastAPI.__call__
    if original is _edge_call:
        return

    @functools.wraps(original)
    async def __call__(self: fastapi.FastAPI, scope: dict, receive: Any, send: Any) -> None:
        await original(self, strip_untrusted_context(scope), receive, send)

    _edge_call = fastapi.FastAPI.__call__ = __call__  # type: ignore[method-assign]


class _ServerExtras:
    """What FastAPI's own telemetry does not record: body sizes (the user's "KB received /
    sent"), the `traceresponse` header, and the link to a refused client parent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        meter = metrics.get_meter("otel_kit.fastapi")
        self._metering = not isinstance(metrics.get_meter_provider(), metrics.NoOpMeterProvider)
        self._request_size = meter.create_histogram(
            "http.server.request.body.size", unit="By", description="Size of HTTP server request bodies."
        )
        self._response_size = meter.create_histogram(
            "http.server.response.body.size", unit="By", description="Size of HTTP server response bodies."
        )

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        span = trace.get_current_span()
        if scope["type"] != "http" or not span.is_recording():
            await self.app(scope, receive, send)
            return
        link_untrusted_parent(span, scope)
        sent = 0
        status = None

        traceresponse = _traceresponse_headers(span.get_span_context())

        async def send_with_extras(message: dict) -> None:
            nonlocal sent, status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *traceresponse]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, send_with_extras)
        if not self._metering:
            return
        route = scope.get("route")
        attributes = {
            "http.request.method": scope.get("method", "_OTHER"),
            "http.response.status_code": status,
        }
        if route is not None and getattr(route, "path", None):
            attributes["http.route"] = route.path
        received = _content_length(scope)
        if received is not None:
            self._request_size.record(received, attributes)
        self._response_size.record(sent, attributes)


def _traceresponse_headers(context: trace.SpanContext) -> tuple[tuple[bytes, bytes], ...]:
    """What contrib's TraceResponsePropagator sets, built from the span we already hold."""
    value = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    return ((b"traceresponse", value.encode()), (b"access-control-expose-headers", b"traceresponse"))


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
