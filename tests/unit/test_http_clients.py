"""requests and httpx (sync and async): client spans, and trace context + order id carried to the server."""

import asyncio

import httpx
import pytest
import requests
from fastapi import FastAPI, Request
from opentelemetry.trace import SpanKind

import otel_kit
from tests.helpers import serve


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.get("/echo")
    def echo(request: Request) -> dict:
        return {"order": otel_kit.current_order_id(), "baggage": request.headers.get("baggage")}

    return app


def _call_requests(url: str) -> dict:
    return requests.get(f"{url}/echo", timeout=5).json()


def _call_httpx(url: str) -> dict:
    with httpx.Client() as client:
        return client.get(f"{url}/echo").json()


def _call_httpx_async(url: str) -> dict:
    async def call() -> dict:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{url}/echo")).json()

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
