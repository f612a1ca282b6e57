"""The edge setting under every server users run FastAPI with: spoofed context refused, requests served.

Each server is started as users start it, on a free port, with the kit's one line in the app
and OTEL_KIT_TRUST_INCOMING_CONTEXT=false; requests carry a client's `traceparent` and
`baggage`. Servers tell an ASGI 3 app from its `__call__` (and uvicorn tries it as a
factory), so the kit's edge must leave that exactly as FastAPI has it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mirakuru import HTTPExecutor

from tests.integration.servers import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SPOOFED_TRACE = "0af7651916cd43dd8448eb211c80319c"
SPOOFED = {
    "traceparent": f"00-{SPOOFED_TRACE}-b7ad6b7169203331-01",
    "tracestate": "vendor=spoofed",
    "baggage": "order.id=SPOOFED-1",
}
APP = "tests.integration.edge_app:app"
RUN = (
    "import sys, uvicorn\nfrom tests.integration.edge_app import app\nuvicorn.run(app, port=int(sys.argv[1]))"
)

SERVERS = {
    "uvicorn": [str(BIN / "uvicorn"), APP, "--port", "{port}"],
    "uvicorn --workers 2": [str(BIN / "uvicorn"), APP, "--port", "{port}", "--workers", "2"],
    "uvicorn.run(app)": [sys.executable, "-c", RUN, "{port}"],
    "gunicorn -k uvicorn_worker.UvicornWorker -w 2": [
        str(BIN / "gunicorn"), APP, "-k", "uvicorn_worker.UvicornWorker", "-w", "2", "-b", "127.0.0.1:{port}",
    ],
    "hypercorn": [str(BIN / "hypercorn"), APP, "--bind", "127.0.0.1:{port}"],
}  # fmt: skip


@pytest.fixture(params=list(SERVERS), ids=list(SERVERS))
def edge_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = [part.format(port=port) for part in SERVERS[request.param]]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env = {
        **clean,
        "PYTHONPATH": str(REPO),
        "OTEL_KIT_TRUST_INCOMING_CONTEXT": "false",
        "OTEL_TRACES_EXPORTER": "none",  # the span is read inside the app; nothing to send
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    log = tmp_path / "server.log"
    executor = HTTPExecutor(
        command,
        url=f"http://127.0.0.1:{port}/docs",
        status=200,
        timeout=60,
        cwd=REPO,
        envvars=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    executor.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        executor.stop()
        output = log.read_text()
        assert "Traceback" not in output, output
        assert "factory detected" not in output, output


def test_spoofed_context_is_refused_and_every_request_served(edge_url: str):
    with httpx.Client(base_url=edge_url, timeout=10) as client:
        answers = [client.get("/seen", headers=SPOOFED) for _ in range(8)]  # reaches both workers
        docs = client.get("/docs", headers=SPOOFED)
    assert docs.status_code == 200
    for answer in answers:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body == {"order": None, "trace_id": body["trace_id"], "parent": False}
        assert body["trace_id"] not in (SPOOFED_TRACE, "0" * 32)  # a fresh, recorded trace
        assert answer.headers["traceresponse"].split("-")[1] == body["trace_id"]
    assert len({answer.json()["trace_id"] for answer in answers}) == len(answers)
