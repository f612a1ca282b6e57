"""The internet-facing service of the edge tests: the kit's one line with client context refused.

Served by each real server in test_edge_servers.py; it answers what the kit made of the request.
"""

from fastapi import FastAPI
from opentelemetry import trace

import otel_kit

otel_kit.init("edge")  # OTEL_KIT_TRUST_INCOMING_CONTEXT=false comes from the environment

app = FastAPI()


@app.get("/seen")
def seen() -> dict:
    span = trace.get_current_span()
    return {
        "order": otel_kit.current_order_id(),
        "trace_id": format(span.get_span_context().trace_id, "032x"),
        "parent": getattr(span, "parent", None) is not None,
    }
