"""Span export from a child process: the wire format loses nothing, the child's lifecycle holds."""

from __future__ import annotations

# Before any TracerProvider: its fork hook runs a ThreadPoolExecutor in forked children, and
# deadlocks there if concurrent.futures.thread (whose hook frees that executor's lock in the
# child) registered its hook after it. otel_kit._setup imports it first for the same reason.
import concurrent.futures.thread  # noqa: F401
import logging
import os
import select
import signal
import textwrap
import threading
import time
from pathlib import Path
from unittest import mock

import psutil
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from otel_kit._export import child as export_process
from otel_kit._export.child import ChildState, ProcessSpanExporter
from otel_kit._export.rows import SpanCatalog, SpanRow, from_wire
from tests.helpers import run_python
from tests.integration.servers import free_port


def _spans() -> list[ReadableSpan]:
    """Spans using every field the OTLP encoder reads, including dropped counts."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource({"service.name": "shop", "service.instance.id": "h-1"}, "https://schema/1"),
        span_limits=SpanLimits(max_span_attributes=3, max_events=2, max_links=1, max_event_attributes=1),
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    remote = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "x1")]),
    )
    http = provider.get_tracer("http", "1.2", schema_url="https://schema/http", attributes={"lib": "h"})
    db = provider.get_tracer("db")
    link = Link(SpanContext(0x1234, 0x5678, is_remote=True), {"why": "refused parent"})
    extra = Link(SpanContext(0x9ABC, 0xDEF0, is_remote=False))
    with http.start_as_current_span(
        "POST /orders",
        context=trace.set_span_in_context(trace.NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "http.route": "/orders", "tags": ("a", "b")},
        links=[link, extra],
    ) as server:
        server.set_attribute("over.limit", 1)  # dropped: 3 attributes at most
        server.add_event("retry", {"attempt": 2, "dropped": True})
        server.add_event("e2")
        server.add_event("e3")  # dropped: 2 events at most
        with db.start_as_current_span(
            "INSERT orders", kind=SpanKind.CLIENT, attributes={"rows": 1.5}
        ) as db_span:
            db_span.set_status(Status(StatusCode.ERROR, "unique violation"))
    return list(memory.get_finished_spans())


def test_spans_sent_through_the_wire_encode_to_the_same_otlp_bytes():
    spans = _spans()
    assert spans[1].dropped_attributes == 1
    assert spans[1].dropped_events == 1
    assert spans[1].dropped_links == 1

    catalog = SpanCatalog()
    rows = [catalog.row(span) for span in spans]
    rebuilt = from_wire(*catalog.batch(rows))

    assert len(catalog.scopes) == 2  # rows carry their scope by index
    assert encode_spans(rebuilt).SerializeToString() == encode_spans(spans).SerializeToString()


def test_the_catalog_keeps_one_entry_per_resource_and_scope_however_many_tracers():
    provider = TracerProvider(resource=Resource({"service.name": "shop"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for _ in range(50):  # a tracer per request: same scope by value, a new object each time
        provider.get_tracer("per-request", "1.0").start_span("s").end()
    catalog = SpanCatalog()

    rows = [catalog.row(span) for span in memory.get_finished_spans()]

    assert len(catalog.resources) == 1
    assert len(catalog.scopes) == 1
    assert {(SpanRow._make(row).resource, SpanRow._make(row).scope) for row in rows} == {(0, 0)}


def _rows(exporter: ProcessSpanExporter) -> list[tuple]:
    return [exporter.catalog.row(span) for span in _spans()]


@pytest.fixture
def exporter(monkeypatch) -> ProcessSpanExporter:
    # Nothing listens there: the child's export fails fast, which is all these tests need.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    exporter = ProcessSpanExporter("grpc", f"http://127.0.0.1:{free_port()}", _no_fallback)
    exporter._restart_backoff_s = 0.0
    yield exporter
    exporter.shutdown(timeout_millis=10_000)


def _no_fallback():
    raise AssertionError("the in-process fallback was used")


def test_flush_waits_for_the_child_and_shutdown_ends_it(exporter):
    assert exporter.export(_rows(exporter)) is SpanExportResult.SUCCESS
    proc = exporter._proc
    assert proc is not None
    assert proc.poll() is None

    assert exporter.force_flush(timeout_millis=20_000) is True
    exporter.shutdown(timeout_millis=20_000)

    assert proc.returncode == 0
    assert exporter.export(_rows(exporter)) is SpanExportResult.FAILURE  # after shutdown, nothing is sent


def test_a_child_that_died_is_replaced_for_the_next_batch(exporter):
    exporter._restart_backoff_s = 600.0  # for children that die before they have started
    exporter.export(_rows(exporter))
    assert exporter.force_flush(timeout_millis=20_000) is True  # this one has
    first = exporter._proc
    first.kill()
    first.wait()

    assert exporter.export(_rows(exporter)) is SpanExportResult.SUCCESS
    assert exporter._proc.pid != first.pid
    assert exporter.force_flush(timeout_millis=20_000) is True


def test_a_child_that_dies_starting_waits_out_the_back_off_and_the_spans_lost_are_logged(exporter, caplog):
    rows = _rows(exporter)
    exporter.max_held = len(rows)
    exporter._restart_backoff_s = 600.0
    argv, exporter._argv = exporter._argv, [exporter._argv[0], "-c", "raise SystemExit(3)"]
    assert exporter.export(rows) is SpanExportResult.SUCCESS  # held for the starting child
    exporter._proc.wait()
    assert not exporter._started(exporter._proc)  # the end of its output is no answer

    assert exporter.export(rows) is SpanExportResult.FAILURE  # no new child yet; no room to hold
    assert exporter._proc is None

    exporter._argv, exporter._next_start = argv, 0.0  # the back-off is over
    with caplog.at_level(logging.WARNING, logger="otel_kit"):
        assert exporter.export(rows) is SpanExportResult.SUCCESS
    assert f"{len(rows)} spans lost while the span export process was restarting" in caplog.text
    assert exporter.force_flush(timeout_millis=20_000) is True


def test_a_child_that_cannot_start_leaves_export_in_process(monkeypatch):
    in_process = InMemorySpanExporter()
    exporter = ProcessSpanExporter("grpc", None, lambda: in_process)
    exporter._restart_backoff_s = 0.0
    exporter._argv = [str(Path("/nonexistent/python"))]
    spans = _spans()
    rows = [exporter.catalog.row(span) for span in spans]

    results = [exporter.export(rows) for _ in range(3)]

    # Held while a child might still start, then exported in-process with the third batch.
    assert results == [SpanExportResult.SUCCESS] * 3
    assert exporter.state is ChildState.GAVE_UP
    exported = encode_spans(in_process.get_finished_spans()).SerializeToString()
    assert exported == encode_spans(spans * 3).SerializeToString()
    exporter.shutdown()


def _recording_child(
    exporter: ProcessSpanExporter, tmp_path: Path, *, dies_sending: bool = False
) -> tuple[Path, Path]:
    """Make the next children record how many rows each batch they receive holds instead of
    sending them, and wait for a FIFO (the gate) before starting: a slow start made
    observable. With `dies_sending`, the first of them dies sending its first batch."""
    gate, received, died = tmp_path / "gate", tmp_path / "received", tmp_path / "died"
    os.mkfifo(gate)
    child = textwrap.dedent(
        """
        import os, sys
        gate, received, died, dies_sending = sys.argv[1:5]
        open(gate).read()
        import otel_kit._export.encoder as encoder
        from otel_kit._export.child import _child_main

        class Recording:
            def export_rows(self, batch):
                if dies_sending == "yes" and not os.path.exists(died):
                    open(died, "w").close()
                    os._exit(9)
                with open(received, "a") as out:
                    out.write(f"{len(batch[2])}\\n")

            def shutdown(self):
                pass

        encoder.row_exporter = lambda protocol: Recording()
        _child_main(sys.argv[5:])
        """
    )
    flag = "yes" if dies_sending else "no"
    exporter._argv = [exporter._argv[0], "-c", child, str(gate), str(received), str(died), flag, "grpc"]
    return gate, received


def test_batches_wait_for_a_replaced_child_to_start_not_on_its_pipe(exporter, tmp_path):
    """A child that died is replaced; until the new one has started (importing gRPC, ~0.5 s)
    batches are held, not written into its pipe, where the batch worker would stall while
    the queue filled behind it."""
    spans = _spans()
    # Batches that do not fit the pipe's buffer: written to a child not yet reading, they block.
    rows = [exporter.catalog.row(span) for span in spans] * 500  # 2 x 1,000 held: under 2,048
    exporter.export(rows)
    assert exporter.force_flush(timeout_millis=20_000) is True  # the first child is up
    first = exporter._proc
    first.kill()
    first.wait()
    gate, received = _recording_child(exporter, tmp_path)

    results: list[SpanExportResult] = []
    worker = threading.Thread(target=lambda: results.extend(exporter.export(rows) for _ in range(2)))
    worker.start()
    worker.join(timeout=20)  # a failure detector: the exports return at once unless they block
    alive = worker.is_alive()
    with open(gate, "w"):  # the new child may start
        pass
    worker.join()

    assert not alive, "the batch worker waited on the starting child's pipe"
    assert results == [SpanExportResult.SUCCESS] * 2
    assert exporter._proc.pid != first.pid
    assert select.select([exporter._proc.stdout], [], [], 20)[0]  # its answer: it has started
    assert exporter.export(rows) is SpanExportResult.SUCCESS  # the held batches go before this one
    assert exporter.force_flush(timeout_millis=20_000) is True
    assert received.read_text().split() == [str(len(rows))] * 3  # one batch a message, as made


def test_a_batch_written_to_a_child_that_just_died_goes_to_its_replacement(exporter, tmp_path):
    rows = _rows(exporter)
    exporter.export(rows)
    assert exporter.force_flush(timeout_millis=20_000) is True  # started and answered
    first = exporter._proc
    first.kill()
    first.wait()
    gate, received = _recording_child(exporter, tmp_path)

    with mock.patch.object(first, "poll", return_value=None):  # its death not seen yet
        assert exporter.export(rows) is SpanExportResult.SUCCESS  # the write fails: held
    assert exporter.export(rows) is SpanExportResult.SUCCESS  # held while the replacement starts
    assert exporter._proc.pid != first.pid
    with open(gate, "w"):
        pass

    assert exporter.force_flush(timeout_millis=20_000) is True
    assert received.read_text().split() == [str(len(rows))] * 2


def test_a_batch_the_child_died_sending_goes_to_its_replacement(exporter, tmp_path):
    """Killed mid-export, the child never answers for that batch: the next child gets it
    (it may arrive twice, never not at all)."""
    gate, received = _recording_child(exporter, tmp_path, dies_sending=True)
    first = _rows(exporter)
    second = first * 2  # told apart by size

    assert exporter.export(first) is SpanExportResult.SUCCESS
    with open(gate, "w"):
        pass
    assert exporter.force_flush(timeout_millis=20_000) is False  # it died sending it
    # Reaped, so the next batch starts its replacement: a child still exiting would be
    # written to (a broken pipe, the batch held), no replacement would read the gate below,
    # and opening it would block (seen under load).
    exporter._proc.wait(timeout=10)
    assert exporter.export(second) is SpanExportResult.SUCCESS
    with open(gate, "w"):
        pass
    assert exporter.force_flush(timeout_millis=20_000) is True

    assert received.read_text().split() == [str(len(first)), str(len(second))]


def test_past_a_queue_of_held_rows_the_batch_waits_for_the_starting_child(exporter, tmp_path):
    rows = [exporter.catalog.row(span) for span in _spans()]
    exporter.max_held = len(rows)
    gate, received = _recording_child(exporter, tmp_path)
    assert exporter.export(rows) is SpanExportResult.SUCCESS  # held
    results: list[SpanExportResult] = []
    worker = threading.Thread(target=lambda: results.append(exporter.export(rows)))
    worker.start()
    with open(gate, "w"):  # the child may start, and read what waits in its pipe
        pass
    worker.join()

    assert results == [SpanExportResult.SUCCESS]
    assert exporter.force_flush(timeout_millis=20_000) is True
    assert received.read_text().split() == [str(len(rows))] * 2  # the held batch, then the new one


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.1)  # polling for an exit with a deadline
    return False


_KIT_WITH_DEAD_ENDPOINT = """
import os, signal, otel_kit
from opentelemetry import trace
kit = otel_kit.init("shop", metrics_exporter="none", logs_exporter="none")
processor = kit.providers.tracer_provider._active_span_processor._span_processors[-1]
exporter = processor._batch_processor._exporter
trace.get_tracer("t").start_span("first").end()
kit.providers.tracer_provider.force_flush()
"""


def _dead_endpoint_env() -> dict[str, str]:
    return {
        "OTEL_KIT_EXPORT_PROCESS": "true",  # the child from the start, whatever the span rate
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
    }


def test_the_child_exits_when_the_service_is_killed():
    result = run_python(
        _KIT_WITH_DEAD_ENDPOINT
        + """
print(exporter._proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
""",
        env=_dead_endpoint_env(),
    )
    assert result.returncode == -signal.SIGKILL
    child = int(result.stdout.split()[0])
    assert _wait_gone(child), f"export process {child} outlived the service"


def test_a_forked_worker_starts_its_own_child_and_the_parents_still_ends():
    result = run_python(
        _KIT_WITH_DEAD_ENDPOINT
        + """
parent_child = exporter._proc.pid
pid = os.fork()
if pid == 0:
    trace.get_tracer("t").start_span("in the worker").end()
    ok = kit.providers.tracer_provider.force_flush()
    print("worker", exporter._proc.pid, ok, flush=True)
    otel_kit.shutdown()
    os._exit(0)
os.waitpid(pid, 0)
print("parent", parent_child, exporter._proc.pid, flush=True)
otel_kit.shutdown()
""",
        env=_dead_endpoint_env(),
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    worker_child, flushed = lines["worker"].split()
    parent_child, still = lines["parent"].split()
    assert flushed == "True"
    assert worker_child != parent_child
    assert still == parent_child
    assert _wait_gone(int(parent_child))
    assert _wait_gone(int(worker_child))


def test_sigint_to_the_group_does_not_kill_the_child_before_the_last_spans(exporter):
    exporter.export(_rows(exporter))
    proc = exporter._proc
    assert exporter.force_flush(timeout_millis=20_000)  # the child is up and has set its signals

    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGTERM)

    assert exporter.export(_rows(exporter)) is SpanExportResult.SUCCESS
    assert exporter.force_flush(timeout_millis=20_000) is True
    assert exporter._proc is proc


def test_a_batch_the_child_cannot_read_costs_that_batch_not_the_child(exporter):
    exporter.export(_rows(exporter))
    proc = exporter._proc

    assert exporter._send(proc, ("spans", 0, [], [], [("not", "a", "span")])) is SpanExportResult.SUCCESS
    assert exporter.force_flush(timeout_millis=20_000) is True

    assert exporter._proc is proc
    assert proc.poll() is None


def test_init_starts_the_child_before_the_first_span():
    """Its start-up overlaps the service's own, not its first requests."""
    result = run_python(
        """
import otel_kit
kit = otel_kit.init("shop", metrics_exporter="none", logs_exporter="none")
exporter = kit.providers.tracer_provider._active_span_processor._span_processors[-1]._exporter
print(exporter._proc is not None and exporter._proc.poll() is None, flush=True)
otel_kit.shutdown()
""",
        env=_dead_endpoint_env(),
    )
    assert result.stdout.split() == ["True"], result.stderr


def test_auto_exports_in_process_until_the_span_rate_calls_for_the_child(monkeypatch, tmp_path):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setattr(export_process, "_RATE_WINDOW_S", 600.0)  # every batch below in one window
    in_process = InMemorySpanExporter()
    spans = _spans()
    # The child once a window has 2.5 batches' worth of spans: at the third batch.
    min_rate = 2.5 * len(spans) / export_process._RATE_WINDOW_S
    exporter = ProcessSpanExporter("grpc", f"http://127.0.0.1:{free_port()}", lambda: in_process, min_rate)
    # The child's start-up held until the test opens this FIFO: a slow start made observable.
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    child = (
        "import sys; open(sys.argv[1]).read(); "
        "from otel_kit._export.child import _child_main; _child_main(sys.argv[2:])"
    )
    exporter._argv = [exporter._argv[0], "-c", child, str(gate), "grpc"]
    exporter.start()  # auto: start() leaves the child for later
    rows = [exporter.catalog.row(span) for span in spans]
    try:
        for _ in range(2):
            assert exporter.export(rows) is SpanExportResult.SUCCESS
            assert exporter._proc is None
            assert exporter.state is ChildState.IN_PROCESS
        assert exporter.force_flush(timeout_millis=5_000) is True
        exported = encode_spans(in_process.get_finished_spans()).SerializeToString()
        assert exported == encode_spans(spans + spans).SerializeToString()

        # The rate is reached: the child starts, and while it does the batches stay in-process
        # rather than wait on its pipe (the batch queue would fill behind them).
        for _ in range(2):
            assert exporter.export(rows) is SpanExportResult.SUCCESS
            assert exporter._proc is not None
            assert exporter._proc.poll() is None
            assert exporter.state is ChildState.STARTING
        assert not in_process._stopped
        exported = encode_spans(in_process.get_finished_spans()).SerializeToString()
        assert exported == encode_spans(spans * 4).SerializeToString()

        with open(gate, "w"):  # the child may start
            pass
        # Its reply to the flush sent at its start says it has started.
        assert select.select([exporter._proc.stdout], [], [], 20)[0]
        assert exporter.export(rows) is SpanExportResult.SUCCESS
        assert exporter.state is ChildState.RUNNING
        assert len(in_process.get_finished_spans()) == 4 * len(spans)
        assert exporter.export(rows) is SpanExportResult.SUCCESS  # and the child stays
        assert exporter.force_flush(timeout_millis=20_000) is True

        # A child that dies is replaced; while the replacement starts, the in-process
        # exporter, kept for this, takes the batches.
        first = exporter._proc
        first.kill()
        first.wait()
        assert exporter.state is ChildState.STARTING  # to be replaced at the next batch
        assert exporter.export(rows) is SpanExportResult.SUCCESS
        assert exporter._proc.pid != first.pid
        assert len(in_process.get_finished_spans()) == 5 * len(spans)
        with open(gate, "w"):
            pass
        assert select.select([exporter._proc.stdout], [], [], 20)[0]
        assert exporter.export(rows) is SpanExportResult.SUCCESS
        assert len(in_process.get_finished_spans()) == 5 * len(spans)
        assert exporter.force_flush(timeout_millis=20_000) is True
    finally:
        exporter.shutdown(timeout_millis=10_000)
    assert exporter.state is ChildState.SHUT_DOWN


def test_init_by_default_exports_in_process_at_first():
    """auto: a service making few spans never starts the child (benchmarks/README.md).

    The in-process exporter is built by init(): built at the first batch, under load, its
    imports held up the batch worker for seconds while the queue overflowed.
    """
    if len(os.sched_getaffinity(0)) < 2:
        pytest.fail(
            f"this test needs 2 cores (auto on one has no child); the machine gives {os.sched_getaffinity(0)}"
        )
    result = run_python(
        """
import os
os.sched_setaffinity(0, {0, 1})
import otel_kit
from opentelemetry import trace
kit = otel_kit.init("shop", metrics_exporter="none", logs_exporter="none")
exporter = kit.providers.tracer_provider._active_span_processor._span_processors[-1]._exporter
print(exporter._local is not None, flush=True)
trace.get_tracer("t").start_span("one").end()
kit.providers.tracer_provider.force_flush()
print(exporter._proc is None, exporter._local is not None, flush=True)
otel_kit.shutdown()
""",
        env={**_dead_endpoint_env(), "OTEL_KIT_EXPORT_PROCESS": "auto"},
    )
    assert result.stdout.split() == ["True", "True", "True"], result.stderr


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", "affinity"), ("100000 100000\n", 1.0), ("50000 100000\n", 0.5), (None, "affinity")],
    ids=["no quota", "one cpu", "half a cpu", "no cgroup v2"],
)
def test_usable_cores_reads_affinity_and_the_cgroup_quota(tmp_path, cpu_max, expected):
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    want = float(affinity) if expected == "affinity" else min(affinity, expected)
    assert export_process.usable_cores(str(path)) == want


@pytest.mark.parametrize(
    ("cores", "exporter"), [({0}, "InProcessRowExporter"), ({0, 1}, "ProcessSpanExporter 1000.0")]
)
def test_auto_never_starts_the_child_on_one_core(cores, exporter):
    if len(os.sched_getaffinity(0)) < len(cores):
        pytest.fail(f"this test needs {len(cores)} cores; the machine gives {os.sched_getaffinity(0)}")
    result = run_python(
        f"""
import os
os.sched_setaffinity(0, {cores!r})
import otel_kit
kit = otel_kit.init("shop", metrics_exporter="none", logs_exporter="none")
exporter = kit.providers.tracer_provider._active_span_processor._span_processors[-1]._exporter
print(type(exporter).__name__, getattr(exporter, "_min_rate", ""), flush=True)
otel_kit.shutdown()
""",
        env={**_dead_endpoint_env(), "OTEL_KIT_EXPORT_PROCESS": "auto"},
    )
    assert result.stdout.split() == exporter.split(), result.stderr


def test_false_exports_in_process_with_no_child_exporter():
    result = run_python(
        """
import otel_kit
kit = otel_kit.init("shop", metrics_exporter="none", logs_exporter="none")
processor = kit.providers.tracer_provider._active_span_processor._span_processors[-1]
print(type(processor).__name__, type(processor._exporter).__name__, flush=True)
otel_kit.shutdown()
""",
        env={**_dead_endpoint_env(), "OTEL_KIT_EXPORT_PROCESS": "false"},
    )
    assert result.stdout.split() == ["RowBatchSpanProcessor", "InProcessRowExporter"], result.stderr
