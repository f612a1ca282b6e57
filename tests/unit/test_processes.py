"""Zero-code start and forking servers, each in real processes."""

import json
import sys
from pathlib import Path

import httpx
from mirakuru import HTTPExecutor

from tests.helpers import run_python
from tests.integration.servers import free_port

ROOT = Path(__file__).parents[2]
INSTRUMENT = str(Path(sys.executable).parent / "opentelemetry-instrument")


def test_opentelemetry_instrument_runs_the_kit_and_init_does_not_run_twice():
    result = run_python(
        """
        import json, fastapi, otel_kit
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from fastapi.testclient import TestClient
        from tests.unit.apps.plain import app
        first = otel_kit._current
        memory = InMemorySpanExporter()
        first.providers.tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
        again = otel_kit.init("shop")
        response = TestClient(app).get("/hello")
        print(json.dumps({
            "same": first is again,
            "instrumented": first.instrumented,
            "class_swapped": fastapi.FastAPI.__name__ != "FastAPI",
            "spans": [(s.name, s.kind.name) for s in memory.get_finished_spans()],
            "traceresponse": "traceresponse" in response.headers,
        }))
        """,
        launcher=(INSTRUMENT,),
        env={
            "OTEL_SERVICE_NAME": "shop",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "PYTHONPATH": str(ROOT),
        },
    )
    seen = json.loads(result.stdout)
    assert seen["same"] is True
    assert {"fastapi", "requests", "httpx", "pika", "psycopg2", "logging"} <= set(seen["instrumented"])
    assert seen["class_swapped"] is False  # contrib's own FastAPI instrumentor did not run as well
    assert seen["spans"] == [["GET /hello", "SERVER"]]
    assert seen["traceresponse"] is True
    assert "already ran" not in result.stderr


def test_each_uvicorn_worker_initialises_and_a_shared_metrics_port_is_only_a_warning(tmp_path):
    port, metrics_port = free_port(), free_port()
    log = tmp_path / "uvicorn.log"
    command = [
        *(sys.executable, "-m", "uvicorn", "tests.unit.apps.workers:app"),
        *("--port", str(port), "--workers", "2"),
    ]
    env = {
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port),
    }
    executor = HTTPExecutor(
        command,
        url=f"http://127.0.0.1:{port}/whoami",
        method="GET",
        cwd=str(ROOT),
        envvars=env,
        timeout=60,
        stdout=log.open("w"),
        stderr=-2,  # subprocess.STDOUT
    )
    with executor:
        answers = [httpx.get(f"http://127.0.0.1:{port}/whoami").json() for _ in range(20)]
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").status_code == 200
    for answer in answers:
        assert answer["instance"].endswith(f"-{answer['pid']}")  # each worker has its own identity
    output = log.read_text()
    assert output.count("Started server process") == 2
    assert output.count(f"metrics not served: cannot listen on 127.0.0.1:{metrics_port}") == 1
