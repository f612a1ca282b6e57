"""requests and httpx (sync and async): client spans, and trace context + order id carried to the server."""

import asyncio
import contextlib
import socket

import httpx
import pytest
import requests
from fastapi import FastAPI, Request, Response
from opentelemetry.instrumentation._semconv import _StabilityMode
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import otel_kit
from otel_kit.integrations import httpx as kit_httpx
from tests.helpers import serve


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.get("/echo")
    def echo(request: Request) -> dict:
        return {"order": otel_kit.current_order_id(), "baggage": request.headers.get("baggage")}

    return app


def _call_requests(url: str, path: str = "/echo") -> dict:
    return requests.get(f"{url}{path}", timeout=5).json()


def _call_httpx(url: str, path: str = "/echo") -> dict:
    with httpx.Client() as client:
        return client.get(f"{url}{path}").json()


def _call_httpx_async(url: str, path: str = "/echo") -> dict:
    async def call() -> dict:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{url}{path}")).json()

    return asyncio.run(call())


@pytest.mark.parametrize("call", [_call_requests, _call_httpx, _call_httpx_async])
def test_client_span_and_server_span_share_trace_and_order(spans, call):
    with serve(echo_app()) as url, otel_kit.order("H-1"):
        answer = call(url)
    assert answer == {"order": "H-1", "baggage": "order.id=H-1"}
    client = next(span for span in spans.all() if span.kind == SpanKind.CLIENT)
    server = next(span for span in spans.all() if span.kind == SpanKind.SERVER)
    assert client.attributes["order.id"] == server.attributes["order.id"] == "H-1"
    assert server.parent.span_id == client.context.span_id
    assert server.context.trace_id == client.context.trace_id
    assert client.attributes["http.request.method"] == "GET"


# The kit's own per-request httpx wrapper against contrib's, both fed the same options that
# contrib's instrumentor builds, and both tracing into in-memory exporters.
def _status_app() -> FastAPI:
    app = FastAPI()

    @app.get("/status/{code}")
    def status(code: int) -> Response:
        return Response(status_code=code)

    return app


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _trace_one(wrapper, url: str, asynchronous: bool) -> tuple[ReadableSpan, dict | None]:
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    options = {
        "module": httpx,
        "tracer": tracer_provider.get_tracer("test"),
        "duration_histogram_old": None,
        "duration_histogram_new": meter.create_histogram("http.client.request.duration", unit="s"),
        "sem_conv_opt_in_mode": _StabilityMode.HTTP,
        "excluded_urls": None,
        "captured_request_headers": [],
        "captured_response_headers": [],
        "sensitive_headers": [],
    }
    request = httpx.Request("GET", url)
    if asynchronous:
        options.update(async_request_hook=None, async_response_hook=None)
        transport = httpx.AsyncHTTPTransport()

        async def call() -> None:
            with contextlib.suppress(httpx.ConnectError):
                await wrapper(transport.handle_async_request, transport, (request,), {}, **options)
            await transport.aclose()

        asyncio.run(call())
    else:
        options.update(request_hook=None, response_hook=None)
        with httpx.HTTPTransport() as transport, contextlib.suppress(httpx.ConnectError):
            wrapper(transport.handle_request, transport, (request,), {}, **options)
    [span] = exporter.get_finished_spans()
    data = reader.get_metrics_data()
    if data is None:
        return span, None
    [point] = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    return span, {**point.attributes, "count": point.count}


@pytest.mark.parametrize("call", [_call_requests, _call_httpx, _call_httpx_async])
def test_a_presigned_url_is_exported_without_its_signature(spans, call):
    sigv4 = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261122&X-Amz-Expires=60"
    sigv4 += "&X-Amz-Security-Token=session-token&X-Amz-Signature=abc123def&X-Amz-SignedHeaders=host"
    with serve(echo_app()) as url:
        call(url, f"/echo?{sigv4}")
    full = next(span for span in spans.all() if span.kind is SpanKind.CLIENT).attributes["url.full"]
    for secret in ("AKIA", "session-token", "abc123def"):
        assert secret not in full
    assert "X-Amz-Signature=REDACTED" in full
    assert "X-Amz-Expires=60" in full


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    "target", ["200", "503", "404 with credentials and a signature", "connection refused"]
)
def test_kit_httpx_wrapper_matches_contrib(target, asynchronous):
    with serve(_status_app()) as base:
        url = {
            "200": f"{base}/status/200",
            "503": f"{base}/status/503",
            "404 with credentials and a signature": f"{base}/status/404?Signature=secret&page=2".replace(
                "http://", "http://user:pw@"
            ),
            "connection refused": f"{_closed_port()}/status/200",
        }[target]
        ours = _trace_one(
            kit_httpx._handle_async_request if asynchronous else kit_httpx._handle_request, url, asynchronous
        )
        contrib = _trace_one(
            kit_httpx._contrib_async if asynchronous else kit_httpx._contrib_sync, url, asynchronous
        )
    (span, metric), (expected_span, expected_metric) = ours, contrib
    assert (span.name, span.kind, span.status.status_code) == (
        expected_span.name,
        expected_span.kind,
        expected_span.status.status_code,
    )
    assert dict(span.attributes) == dict(expected_span.attributes)
    assert [event.name for event in span.events] == [event.name for event in expected_span.events]
    if target == "connection refused":
        # Contrib records no duration for a request that failed without a response; the
        # conventions ask for one with error.type, which ours records.
        assert expected_metric is None
        assert metric == {**metric, "error.type": "ConnectError", "count": 1}
    else:
        assert metric == expected_metric
    assert "secret" not in span.attributes["url.full"]
    assert "pw" not in span.attributes["url.full"]
