"""The verdict's rules on Jaeger's JSON: a call that got no answer names the peer it could not reach."""

from __future__ import annotations

from typing import Any

from otel_kit.cli.verdict import verdict

DONE = ("shop", "orders receive")


def span(span_id: str, service: str, name: str, parent: str | None = None, **tags: Any) -> dict:
    return {
        "spanID": span_id,
        "processID": service,
        "operationName": name,
        "startTime": 1_000 + len(span_id),
        "duration": 10,
        "references": [{"refType": "CHILD_OF", "spanID": parent}] if parent else [],
        "tags": [{"key": _key(k), "value": v} for k, v in tags.items()],
        "logs": [],
    }


def _key(name: str) -> str:
    """span_kind -> span.kind; the two underscores of the conventions' names stay."""
    dotted = name.replace("_", ".")
    return dotted.replace("status.code", "status_code").replace("status.description", "status_description")


def failed_call(span_id: str, parent: str, message: str, **tags: Any) -> dict:
    call = span(span_id, "mes", "POST", parent, span_kind="client", error=True, **tags)
    call["logs"] = [
        {
            "fields": [
                {"key": "event", "value": "exception"},
                {"key": "exception.type", "value": "httpx.ConnectError"},
                {"key": "exception.message", "value": message},
            ]
        }
    ]
    return call


def trace_of(*spans: dict) -> list[dict]:
    services = {s["processID"] for s in spans}
    return [{"traceID": "t1", "processes": {s: {"serviceName": s} for s in services}, "spans": list(spans)}]


CONSUMER = span("c1", "mes", "orders receive", None, span_kind="consumer", error=True)
CRM_CALL = {
    "server.address": "127.0.0.1",
    "server.port": 8002,
    "url.full": "http://127.0.0.1:8002/customers/1",
}


def test_a_refused_call_names_the_service_that_answers_there_in_other_traces():
    asked = []

    def service_at(host: str, port: int) -> str | None:
        asked.append((host, port))
        return "crm"

    call = failed_call("h1", "c1", "[Errno 111] Connection refused", **CRM_CALL)
    result = verdict("o-1", trace_of(CONSUMER, call), DONE, service_at)
    assert (result.outcome, result.service, result.peer) == ("failed", "mes", "crm")
    assert result.reason.startswith("unreachable (connection refused): httpx.ConnectError")
    assert asked == [("127.0.0.1", 8002)]
    assert result.summary().startswith("o-1: failed at mes -> crm: POST - unreachable (connection refused)")


def test_the_order_s_own_server_spans_name_the_peer_before_jaeger_is_asked():
    answered = span("s1", "crm", "POST /customers/{id}/orders", "h0", span_kind="server",
                    server_address="127.0.0.1", server_port=8002)  # fmt: skip
    earlier = span("h0", "mes", "POST", "c0", span_kind="client", http_response_status_code=201, **CRM_CALL)
    call = failed_call("h1", "c1", "timed out", **CRM_CALL)
    result = verdict("o-2", trace_of(CONSUMER, earlier, answered, call), DONE, lambda h, p: "wrong")
    assert (result.peer, result.reason.split(":")[0]) == ("crm", "no answer (timed out)")


def test_an_unknown_address_is_named_as_it_is():
    call = failed_call("h1", "c1", "Name or service not known", url_full="http://crm.internal:8002/x")
    result = verdict("o-3", trace_of(CONSUMER, call), DONE, lambda h, p: None)
    assert (result.peer, result.reason.split(":")[0]) == (
        "crm.internal:8002",
        "unreachable (name not resolved)",
    )


def test_a_database_that_refused_the_connection_is_named_by_the_span():
    connect = span("d1", "mes", "connect", "c1", span_kind="client", error=True, db_system="postgresql",
                   db_name="mes", net_peer_name="127.0.0.1", net_peer_port=5434,
                   otel_status_description='connection to server at "127.0.0.1", port 5434 failed: '
                   "Connection refused")  # fmt: skip
    result = verdict("o-4", trace_of(CONSUMER, connect), DONE)
    assert (result.service, result.step, result.peer) == ("mes", "connect", "postgresql db mes")
    assert result.reason.startswith("unreachable (connection refused)")


def test_a_call_that_got_an_answer_names_no_peer():
    call = span("h1", "mes", "POST", "c1", span_kind="client", error=True, http_response_status_code=500,
                **CRM_CALL)  # fmt: skip
    result = verdict("o-5", trace_of(CONSUMER, call), DONE, lambda h, p: "crm")
    assert result.peer is None
    assert result.reason.startswith("HTTP 500")
