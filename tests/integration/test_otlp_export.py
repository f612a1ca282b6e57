"""Spans and log records reach the real collector over OTLP gRPC (default) and http/protobuf,
spans exported from the kit's child process (default) and from the service itself."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from mirakuru import TCPExecutor

from tests.helpers import run_python
from tests.integration.servers import free_port

ROOT = Path(__file__).parents[2]


@dataclass
class Collector:
    grpc: int
    http: int
    log: Path
    since: int = 0  # where the current test's output starts in `log`

    def output(self) -> str:
        """What the collector printed during the current test."""
        with self.log.open("rb") as log:
            log.seek(self.since)
            return log.read().decode(errors="replace")

    def wait_for(
        self, *texts: str, sender: subprocess.CompletedProcess | None = None, timeout: float = 20
    ) -> str:
        """The collector's output once it contains every one of `texts` (it prints what it
        receives); a failure shows that output and the `sender`'s stderr."""
        deadline = time.monotonic() + timeout
        missing = list(texts)  # shrinks as texts arrive: a test waits for up to 2,000 of them
        while True:
            output = self.output()
            missing = [text for text in missing if text not in output]
            if not missing:
                return output
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)  # polling a condition with a deadline, not a fixed wait
        raise AssertionError(
            f"{missing[:5]!r} ({len(missing)} in all) never reached the collector; it printed:\n"
            f"{output[-3000:]}\n"
            f"The sender's stderr:\n{sender.stderr if sender else '(not given)'}"
        )


@pytest.fixture(scope="session")
def _collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    binary = subprocess.run(
        [str(ROOT / "collector" / "build.sh")], capture_output=True, text=True, check=True
    ).stdout.splitlines()[-1]
    grpc, http = free_port(), free_port()
    log = tmp_path_factory.mktemp("collector") / "collector.log"
    executor = TCPExecutor(
        [binary, "--config", str(ROOT / "tests" / "integration" / "otelcol-debug.yaml")],
        host="127.0.0.1",
        port=grpc,
        envvars={"TEST_OTLP_GRPC_PORT": str(grpc), "TEST_OTLP_HTTP_PORT": str(http)},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        timeout=60,
    )
    with executor:
        yield Collector(grpc, http, log)


@pytest.fixture
def collector(_collector: Collector) -> Collector:
    """The session's collector, its output read from where this test starts: a whole-log
    search for each of 2,000 texts took 40 s once earlier tests had printed 20 MB."""
    return replace(_collector, since=_collector.log.stat().st_size)


def _export_env(port: int, protocol: str, export_process: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_KIT_EXPORT_PROCESS": export_process,
    }


@pytest.mark.parametrize(
    "export_process", ["true", "false", "auto"], ids=["child-process", "in-process", "auto-few-spans"]
)
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_spans_and_logs_arrive_with_resource_and_order(collector, protocol, export_process):
    marker = f"export-{uuid.uuid4().hex[:8]}"
    port = collector.grpc if protocol == "grpc" else collector.http
    result = run_python(
        f"""
        import logging, otel_kit
        from opentelemetry import trace
        otel_kit.init("shop", metrics_exporter="none")
        with trace.get_tracer("t").start_as_current_span("{marker}"), otel_kit.order("{marker}-order"):
            logging.getLogger("shop").warning("{marker} log line")
        otel_kit.shutdown()
        """,
        env=_export_env(port, protocol, export_process),
    )
    assert result.returncode == 0, result.stderr
    output = collector.wait_for(f"{marker} log line", sender=result)
    output = collector.wait_for(f"Name           : {marker}", sender=result)
    assert f"order.id: Str({marker}-order)" in output
    assert "service.name: Str(shop)" in output


def test_spans_after_the_export_process_died_still_arrive(collector):
    marker = f"restart-{uuid.uuid4().hex[:8]}"
    result = run_python(
        f"""
        import otel_kit
        from opentelemetry import trace
        kit = otel_kit.init("shop", metrics_exporter="none", logs_exporter="none")
        batch = kit.providers.tracer_provider._active_span_processor._span_processors[-1]
        exporter = batch._batch_processor._exporter
        # The child below dies at once; restart it without the crash-loop pause.
        exporter._restart_backoff_s = exporter._next_start = 0
        tracer = trace.get_tracer("t")
        tracer.start_span("{marker}-before").end()
        assert kit.providers.tracer_provider.force_flush()
        first = exporter._proc
        first.kill()
        first.wait()
        tracer.start_span("{marker}-after").end()
        assert kit.providers.tracer_provider.force_flush()
        print(first.pid, exporter._proc.pid)
        otel_kit.shutdown()
        """,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.grpc}",
            "OTEL_KIT_EXPORT_PROCESS": "true",
        },
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split()
    assert first != second
    assert "the span export process exited" in result.stderr
    collector.wait_for(f"Name           : {marker}-before", sender=result)
    collector.wait_for(f"Name           : {marker}-after", sender=result)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_an_endpoint_given_to_init_wins_over_the_environment_in_the_export_process(collector, protocol):
    marker = f"argument-{uuid.uuid4().hex[:8]}"
    port = collector.grpc if protocol == "grpc" else collector.http
    result = run_python(
        f"""
        import otel_kit
        from opentelemetry import trace
        otel_kit.init("shop", metrics_exporter="none", logs_exporter="none",
                      otlp_endpoint="http://127.0.0.1:{port}", otlp_protocol="{protocol}")
        trace.get_tracer("t").start_span("{marker}").end()
        otel_kit.shutdown()
        """,
        # nothing listens at the environment's endpoint
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "OTEL_KIT_EXPORT_PROCESS": "true",
        },
    )
    assert result.returncode == 0, result.stderr
    collector.wait_for(f"Name           : {marker}", sender=result)


@pytest.mark.parametrize("export_process", ["true", "false"], ids=["child-process", "in-process"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_blank_and_padded_endpoint_variables_are_read_as_the_kit_reads_them(
    collector, protocol, export_process
):
    marker = f"padded-{uuid.uuid4().hex[:8]}"
    endpoint = (
        f"http://127.0.0.1:{collector.grpc}"
        if protocol == "grpc"
        else f"http://127.0.0.1:{collector.http}/v1/traces"
    )
    result = run_python(
        f"""
        import otel_kit
        from opentelemetry import trace
        otel_kit.init("shop", metrics_exporter="none", logs_exporter="none")
        trace.get_tracer("t").start_span("{marker}").end()
        otel_kit.shutdown()
        """,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",  # compose's ${VAR} with VAR unset: unset, not ""
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"  {endpoint} ",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_KIT_EXPORT_PROCESS": export_process,
        },
    )
    assert result.returncode == 0, result.stderr
    collector.wait_for(f"Name           : {marker}", sender=result)


@pytest.mark.parametrize("export_process", ["true", "false"], ids=["child-process", "in-process"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_span_over_the_receivers_request_limit_costs_no_other_span(collector, protocol, export_process):
    """One 5 MB statement in a batch of 100: the collector refuses a request over 4 MiB
    whole, so every span of the batch was lost (gRPC, the default protocol)."""
    marker = f"oversize-{uuid.uuid4().hex[:8]}"
    port = collector.grpc if protocol == "grpc" else collector.http
    result = run_python(
        f"""
        import otel_kit
        from opentelemetry import trace
        otel_kit.init("shop", metrics_exporter="none", logs_exporter="none")
        tracer = trace.get_tracer("t")
        for i in range(100):
            with tracer.start_as_current_span(f"{marker}-{{i}}") as span:
                if i == 50:
                    span.set_attribute("db.statement", "INSERT " + "x" * 5_000_000)
        otel_kit.shutdown()
        """,
        env=_export_env(port, protocol, export_process),
    )
    assert result.returncode == 0, result.stderr
    assert f"A span ('{marker}-50') of " in result.stderr
    assert "is over the 4194304 bytes an OTLP request may hold: sent with its strings cut to" in result.stderr
    collector.wait_for(*(f"Name           : {marker}-{i}\n" for i in range(100)), sender=result)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_an_error_storm_of_log_records_arrives_whole(collector, protocol):
    """600 records with 8 KB stack traces: one batch of the stock exporter was a 7 MB request,
    refused whole by the collector (gRPC), and every record of it was lost."""
    marker = f"storm-{uuid.uuid4().hex[:8]}"
    port = collector.grpc if protocol == "grpc" else collector.http
    result = run_python(
        f"""
        import logging, otel_kit
        otel_kit.init("shop", metrics_exporter="none", traces_exporter="none")
        log = logging.getLogger("shop")
        for i in range(600):
            try:
                raise RuntimeError("db down: " + "y" * 4000)
            except RuntimeError:
                log.exception(f"{marker}-{{i}} failed")
        otel_kit.shutdown()
        """,
        env=_export_env(port, protocol, "false"),
    )
    assert result.returncode == 0, result.stderr
    collector.wait_for(*(f"Str({marker}-{i} failed)" for i in range(600)), sender=result)


@pytest.mark.parametrize("export_process", ["true", "false"], ids=["child-process", "in-process"])
def test_what_is_queued_at_exit_arrives_without_a_shutdown_call(collector, export_process):
    """The flush at exit (one for every signal, bounded by OTEL_KIT_SHUTDOWN_TIMEOUT) sends it all."""
    marker = f"exit-{uuid.uuid4().hex[:8]}"
    result = run_python(
        f"""
        import logging, otel_kit
        from opentelemetry import trace
        otel_kit.init("shop", metrics_exporter="none")
        for i in range(1000):
            with trace.get_tracer("t").start_as_current_span(f"{marker}-{{i}}"):
                logging.getLogger("shop").warning("{marker} line %d", i)
        """,
        env=_export_env(collector.grpc, "grpc", export_process),
    )
    assert result.returncode == 0, result.stderr
    assert "not all sent" not in result.stderr
    collector.wait_for(
        *(f"Name           : {marker}-{i}\n" for i in range(1000)),
        *(f"Str({marker} line {i})" for i in range(1000)),
        sender=result,
    )
