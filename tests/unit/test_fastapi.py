"""FastAPI: one server span per request, stable HTTP conventions, metrics, the edge."""

import json
import urllib.request

from fastapi import FastAPI  # imported before init on purpose: such apps must be traced too
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind, StatusCode

import otel_kit
from tests.helpers import run_python

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/orders/{order_id}")
    def create(order_id: str, body: dict) -> dict:
        with otel_kit.order(order_id):
            return {"id": order_id, "items": body["items"]}

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("kaput")

    return app


def test_one_server_span_named_by_route_with_order_id(spans):
    client = TestClient(make_app())
    response = client.post("/orders/A-1", json={"items": 3}, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    (server,) = spans.all()  # no "http send"/"http receive" spans, no second native FastAPI span
    assert server.kind == SpanKind.SERVER
    assert server.name == "POST /orders/{order_id}"
    assert server.attributes["http.route"] == "/orders/{order_id}"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["order.id"] == "A-1"
    assert format(server.context.trace_id, "032x") == TRACEPARENT.split("-")[1]


def test_bad_order_id_from_upstream_tags_nothing_and_the_request_succeeds(spans):
    app = FastAPI()

    @app.get("/orders/current")
    def current() -> dict:
        return {"order": otel_kit.current_order_id()}

    response = TestClient(app).get("/orders/current", headers={"baggage": "order.id=%3Cscript%3E"})
    assert response.status_code == 200
    assert response.json() == {"order": None}
    assert "order.id" not in spans.all()[0].attributes


def test_response_carries_trace_id_for_support(spans):
    response = TestClient(make_app()).post("/orders/A-2", json={"items": 1})
    version, trace_id, span_id, flags = response.headers["traceresponse"].split("-")
    server = spans.all()[0]
    assert version == "00"
    assert int(flags, 16) & 1  # sampled
    assert trace_id == format(server.context.trace_id, "032x")
    assert span_id == format(server.context.span_id, "016x")


def test_health_and_metrics_are_not_traced(spans):
    client = TestClient(make_app())
    assert client.get("/health").status_code == 200
    assert spans.all() == []


def test_unhandled_error_marks_span_as_error(spans):
    client = TestClient(make_app(), raise_server_exceptions=False)
    assert client.get("/boom").status_code == 500
    (server,) = spans.all()
    assert server.status.status_code == StatusCode.ERROR
    assert server.attributes["http.response.status_code"] == 500
    assert server.attributes["error.type"] == "RuntimeError"


def test_existing_app_with_built_stack_is_instrumented_by_init_app(kit, spans):
    app = make_app()
    app.middleware_stack = app.build_middleware_stack()  # built before init saw it
    otel_kit.init("unit", app=app)
    TestClient(app).post("/orders/A-3", json={"items": 1})
    assert [span.name for span in spans.all()] == ["POST /orders/{order_id}"]


def test_request_metrics_cover_sessions_and_bytes(kit):
    TestClient(make_app()).post("/orders/A-4", json={"items": 5})
    with urllib.request.urlopen(f"http://127.0.0.1:{kit.metrics_port}/metrics") as response:
        page = response.read().decode()
    for name in (
        "http_server_active_requests",
        "http_server_request_duration_seconds_bucket",
        "http_server_request_body_size_bytes_sum",
        "http_server_response_body_size_bytes_sum",
        "process_cpu_utilization",
        "process_memory_usage_bytes",
    ):
        assert name in page, name


def test_edge_refuses_client_context_and_baggage_but_links_it():
    result = run_python(
        f"""
        import json, otel_kit
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        kit = otel_kit.init("shop", traces_exporter="none", logs_exporter="none", metrics_exporter="none")
        memory = InMemorySpanExporter()
        kit.providers.tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
        from fastapi import FastAPI
        from fastapi.testclient import TestClient
        app = FastAPI()

        @app.get("/orders")
        def orders():
            return {{"order": otel_kit.current_order_id()}}

        response = TestClient(app).get(
            "/orders", headers={{"traceparent": "{TRACEPARENT}", "baggage": "order.id=SPOOFED"}}
        )
        (span,) = memory.get_finished_spans()
        print(json.dumps({{
            "body": response.json(),
            "trace_id": format(span.context.trace_id, "032x"),
            "parent": span.parent is not None,
            "attrs": dict(span.attributes),
            "links": [format(link.context.trace_id, "032x") for link in span.links],
            "traceresponse": response.headers.get("traceresponse", ""),
        }}))
        """,
        env={"OTEL_KIT_TRUST_INCOMING_CONTEXT": "false"},
    )
    seen = json.loads(result.stdout)
    spoofed_trace = TRACEPARENT.split("-")[1]
    assert seen["body"] == {"order": None}
    assert seen["trace_id"] != spoofed_trace
    assert seen["parent"] is False
    assert "order.id" not in seen["attrs"]
    assert seen["links"] == [spoofed_trace]
    assert seen["trace_id"] in seen["traceresponse"]


def test_contrib_middleware_path_for_fastapi_without_native_telemetry(spans, monkeypatch):
    from otel_kit.integrations import fastapi as integration

    monkeypatch.setattr(integration, "_use_native", lambda app: False)
    response = TestClient(make_app()).post(
        "/orders/A-5", json={"items": 1}, headers={"traceparent": TRACEPARENT}
    )
    (server,) = spans.all()  # FastAPI's own telemetry steps aside when contrib's middleware is present
    assert server.name == "POST /orders/{order_id}"
    assert server.attributes["order.id"] == "A-5"
    assert format(server.context.trace_id, "032x") in response.headers["traceresponse"]
