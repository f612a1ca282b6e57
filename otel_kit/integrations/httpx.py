"""Client spans for `httpx`, sync and async clients alike.

Contrib's HTTPXClientInstrumentor sets everything up (tracer, duration histogram, excluded
URLs, hooks, captured headers); we replace only its per-request wrappers for the common case:
stable HTTP conventions (the kit's default), a modern `httpx.Request`, no hooks, no captured
headers. Contrib's wrapper re-parses the URL twice, copies the headers to inject into them
and normalises every request and response header even when none is captured: ~1,100 Python
calls and 1.2M instructions per request here, against ~100 calls for the span itself. Ours
makes the same span and histogram point (tests/unit/test_http_clients.py compares them) and
hands every other case to contrib's wrapper.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from timeit import default_timer
from typing import Any

import httpx
from opentelemetry.instrumentation.utils import http_status_to_status_code, is_http_instrumentation_enabled
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.http import redact_url, sanitize_method

from otel_kit._compat import httpx_contrib_wrappers, httpx_instrumentor, httpx_stable_http_mode
from otel_kit._config.settings import Settings
from otel_kit.integrations._urls import redact_sigv4_parameters

_log = logging.getLogger("otel_kit")
_contrib_sync, _contrib_async = httpx_contrib_wrappers()
_STABLE_HTTP = httpx_stable_http_mode()


def instrument(settings: Settings) -> None:
    redact_sigv4_parameters()
    httpx_instrumentor(_handle_request, _handle_async_request).instrument()


def _handle_request(wrapped: Callable, instance: Any, args: tuple, kwargs: dict, **options: Any) -> Any:
    request = _fast_path_request(args, kwargs, options)
    if request is None:
        return _contrib_sync(wrapped, instance, args, kwargs, **options)
    with _Call(request, options) as call:
        call.response = wrapped(*args, **kwargs)
    return call.response


async def _handle_async_request(
    wrapped: Callable, instance: Any, args: tuple, kwargs: dict, **options: Any
) -> Any:
    request = _fast_path_request(args, kwargs, options)
    if request is None:
        return await _contrib_async(wrapped, instance, args, kwargs, **options)
    with _Call(request, options) as call:
        call.response = await wrapped(*args, **kwargs)
    return call.response


class _Call:
    """One traced request: its CLIENT span made current, context injected, outcome recorded.

    A class, not @contextmanager, so that the sync and async wrappers share it without a
    generator per request.
    """

    __slots__ = ("_histogram", "_metric_attributes", "_request", "_scope", "_span", "_started", "response")

    def __init__(self, request: httpx.Request, options: dict) -> None:
        name, span_attributes, self._metric_attributes = _request_attributes(request)
        self._histogram = options["duration_histogram_new"]
        self._scope = options["tracer"].start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes=span_attributes
        )
        self._request = request
        self.response: httpx.Response | None = None

    def __enter__(self) -> _Call:
        self._span = self._scope.__enter__()
        inject(self._request.headers)
        self._started = default_timer()
        return self

    def __exit__(self, exc_type: Any, error: BaseException | None, traceback: Any) -> Any:
        if error is None or isinstance(error, Exception):  # a cancellation is the span's alone
            elapsed = max(default_timer() - self._started, 0)
            try:
                _set_outcome(
                    self._span, self._histogram, self._metric_attributes, elapsed, self.response, error
                )
            except Exception:  # the caller's response or exception goes through whatever happens here
                _log.debug("otel_kit: recording an httpx call failed", exc_info=True)
        return self._scope.__exit__(exc_type, error, traceback)


def _fast_path_request(args: tuple, kwargs: dict, options: dict) -> httpx.Request | None:
    """The request when ours can trace it; None hands it to contrib (or untraced, if suppressed)."""
    request = args[0] if args else kwargs.get("request")
    if (
        not isinstance(request, httpx.Request)
        or options["sem_conv_opt_in_mode"] is not _STABLE_HTTP
        or options.get("request_hook")
        or options.get("response_hook")
        or options.get("async_request_hook")
        or options.get("async_response_hook")
        or options["captured_request_headers"]
        or options["captured_response_headers"]
        or not is_http_instrumentation_enabled()
    ):
        return None
    excluded = options["excluded_urls"]
    if excluded and excluded.url_disabled(str(request.url)):
        return None  # contrib's wrapper checks the same list and passes the call through
    return request


def _request_attributes(request: httpx.Request) -> tuple[str, dict, dict]:
    url = request.url
    name, span_attributes, metric_attributes = _endpoint(
        request.method, url.host, url.port or _PORTS.get(url.scheme)
    )
    full = str(url)
    # Only credentials and a few query parameters are ever redacted; most URLs have neither.
    span_attributes = {**span_attributes, "url.full": redact_url(full) if url.userinfo or url.query else full}
    return name, span_attributes, dict(metric_attributes)


_PORTS = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=256)
def _endpoint(method: str, host: str, port: int | None) -> tuple[str, dict, dict]:
    """Span name and the attributes every request to this method, host and port shares."""
    sanitized = sanitize_method(method.strip())
    span_attributes: dict[str, Any] = {"http.request.method": sanitized}
    if sanitized != method:
        span_attributes["http.request.method_original"] = method
    metric_attributes: dict[str, Any] = {"http.request.method": sanitized}
    if host:
        span_attributes["server.address"] = span_attributes["network.peer.address"] = host
        metric_attributes["server.address"] = host
    if port:
        span_attributes["server.port"] = span_attributes["network.peer.port"] = port
        metric_attributes["server.port"] = port
    return ("HTTP" if sanitized == "_OTHER" else sanitized), span_attributes, metric_attributes


def _set_outcome(
    span: Any,
    histogram: Any,
    metric_attributes: dict,
    elapsed: float,
    response: httpx.Response | None,
    error: BaseException | None,
) -> None:
    if error is None and response is not None:
        status = response.status_code
        metric_attributes["http.response.status_code"] = status
        version = response.http_version.replace("HTTP/", "")
        if version:
            metric_attributes["network.protocol.version"] = version
        if http_status_to_status_code(status) is StatusCode.ERROR:
            metric_attributes["error.type"] = str(status)
            span.set_status(StatusCode.ERROR)
        if span.is_recording():
            span.set_attributes(
                {key: metric_attributes[key] for key in _RESPONSE_KEYS if key in metric_attributes}
            )
    else:
        error_type = type(error).__qualname__
        metric_attributes["error.type"] = error_type
        span.set_attribute("error.type", error_type)
    if histogram is not None:
        histogram.record(elapsed, attributes=metric_attributes)


_RESPONSE_KEYS = ("http.response.status_code", "network.protocol.version", "error.type")
