"""The internet edge: refuse client-sent trace context and baggage (OTEL_KIT_TRUST_INCOMING_CONTEXT=false).

A spoofed `traceparent` would graft a stranger's request into our traces, and spoofed
`baggage` would set `order.id`. The server span instead starts a fresh trace; the
client's span context is kept only as a link.
"""

from __future__ import annotations

from opentelemetry import propagate, trace

_CONTEXT_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
_REMOTE_KEY = "otel_kit.untrusted_remote_context"


def strip_untrusted_context(scope: dict) -> dict:
    """The ASGI scope without a client's trace headers; the refused `traceparent` is kept aside."""
    if scope.get("type") not in ("http", "websocket"):
        return scope
    headers = scope.get("headers") or []
    kept = [(name, value) for name, value in headers if name.lower() not in _CONTEXT_HEADERS]
    if len(kept) == len(headers):
        return scope
    refused = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in headers
        if name.lower() == b"traceparent"
    }
    return {**scope, "headers": kept, _REMOTE_KEY: refused}


def link_untrusted_parent(span: trace.Span, scope: dict) -> None:
    """Record the refused remote parent as a link on the server span, for support to follow if asked."""
    carrier = scope.get(_REMOTE_KEY)
    if not carrier or not span.is_recording():
        return
    remote = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    if remote.is_valid:
        span.add_link(remote, {"otel_kit.untrusted": True})
