"""Load for benchmarks/export_process.py: a service making spans in a tight loop whose span
export process is killed mid-run. Prints what it made and what its queue dropped, as JSON."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from opentelemetry import trace

import otel_kit

seconds, kill_at, pause = (float(arg) for arg in sys.argv[1:4])
kit = otel_kit.init("bench-export-process", metrics_exporter="none", logs_exporter="none")
processor = kit.providers.tracer_provider._active_span_processor._span_processors[-1]
exporter = processor._exporter
dropped = 0
count_drop = processor._drops.add


def counted_drop() -> None:
    global dropped
    dropped += 1
    count_drop()


processor._drops.add = counted_drop
tracer = trace.get_tracer("load")
attributes = {"http.request.method": "GET", "http.route": "/orders/{id}", "order.id": "o-" + "1" * 30}
started, spans, killed = time.monotonic(), 0, None
while (elapsed := time.monotonic() - started) < seconds:
    for _ in range(100):
        with tracer.start_as_current_span("GET /orders/{id}", attributes=attributes):
            pass
    spans += 100
    if killed is None and elapsed >= kill_at and exporter._proc is not None:
        killed = exporter._proc.pid
        os.kill(killed, signal.SIGKILL)
    time.sleep(pause)  # paces the load to a rate the export can keep up with
otel_kit.shutdown()
print(json.dumps({"spans": spans, "dropped": dropped, "killed": killed is not None}))
