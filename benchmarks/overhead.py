"""Throughput of one FastAPI service: bare vs otel_kit.init vs opentelemetry-instrument defaults.

Every mode exports every span (100% sampling) over OTLP gRPC to the real collector. Modes
run interleaved, round after round, and the median of the rounds is reported, as a ratio
to bare in the same run. Run through benchmarks/run (it prepares the environments):

    benchmarks/run overhead throughput --rounds 3 --seconds 10 --dead-endpoint
    benchmarks/run overhead soak --seconds 300      # memory with the OTLP endpoint down
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import psutil
import psycopg2
import typer
from mirakuru import HTTPExecutor, TCPExecutor
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from tests.integration.servers import free_port, start_postgres, start_rabbitmq  # noqa: E402

console = Console(stderr=True)
app = typer.Typer(add_completion=False)
ENDPOINTS = {"trivial": "/trivial", "realistic": "/realistic/bench-1"}


@contextmanager
def collector(binary: Path, metrics_port: int | None = None) -> Iterator[int]:
    """The real collector as OTLP receiver; yields its port. Its own metrics (spans accepted)
    on `metrics_port` at /metrics."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="otel-kit-bench-")) / "collector.log"
    config = ROOT / "benchmarks" / "otelcol-receiver.yaml"
    executor = TCPExecutor(
        [str(binary), "--config", str(config)],
        host="127.0.0.1",
        port=port,
        envvars={
            **os.environ,
            "BENCH_OTLP_PORT": str(port),
            "BENCH_METRICS_PORT": str(metrics_port or free_port()),
        },
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        timeout=30,
    )
    with executor:
        yield port


def _mode_command(mode: str, port: int, zero_code_python: str) -> list[str]:
    uvicorn = ["-m", "uvicorn", "benchmarks.app:app", "--port", str(port), "--log-level", "warning"]
    if mode == "zero-code":
        instrument = str(Path(zero_code_python).parent / "opentelemetry-instrument")
        return [instrument, zero_code_python, *uvicorn]
    return [sys.executable, *uvicorn]


def _mode_env(mode: str, otlp_endpoint: str, base: dict[str, str]) -> dict[str, str]:
    env = {**base, "BENCH_MODE": "kit" if mode.startswith("kit") else mode}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    if mode == "kit-in-process":  # the batch processor's thread encodes and sends, as in the stock SDK
        env["OTEL_KIT_EXPORT_PROCESS"] = "false"
    if mode == "kit-no-export":  # spans recorded, none queued: what exporting costs the service
        env["OTEL_TRACES_EXPORTER"] = "none"
    if mode == "kit-unsampled":  # every instrumentation runs, no span is recorded: the ceiling for span work
        env["OTEL_TRACES_SAMPLER"] = "always_off"
    env.update(OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none", OTEL_SERVICE_NAME="bench")
    if mode == "zero-code":
        # opentelemetry-distro's own distro and configurator: the stock zero-code defaults.
        env.update(OTEL_PYTHON_DISTRO="distro", OTEL_PYTHON_CONFIGURATOR="configurator")
        env["OTEL_TRACES_EXPORTER"] = "otlp"
    return env


def _wrk(url: str, seconds: int, connections: int) -> float:
    return _wrk_run(url, seconds, connections)[0]


def _wrk_run(url: str, seconds: int, connections: int) -> tuple[float, int]:
    """(requests a second, requests) of one wrk run; any failed response fails the benchmark."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url], capture_output=True, text=True, check=True
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), requests


def _cpu_seconds(process: psutil.Process) -> tuple[float, float]:
    """CPU time of the service, and of its children (the span export process) so far."""
    own = process.cpu_times()
    children = 0.0
    for child in process.children():
        with contextlib.suppress(psutil.NoSuchProcess):
            times = child.cpu_times()
            children += times.user + times.system
    return own.user + own.system, children


def measure(
    mode: str, endpoint: str, env: dict[str, str], seconds: int, zero_code_python: str
) -> tuple[float, float, float]:
    """Requests a second, and CPU ms a request of the service and of its export process.

    CPU per request is the steadier measure where two modes should cost the same (endpoint
    down against up): throughput on 2 shared cores moves 10-20% between identical runs.
    """
    port = free_port()
    executor = HTTPExecutor(
        _mode_command(mode, port, zero_code_python),
        url=f"http://127.0.0.1:{port}/trivial",
        method="GET",
        cwd=str(ROOT),
        envvars=env,
        timeout=60,
    )
    with executor:
        url = f"http://127.0.0.1:{port}{ENDPOINTS[endpoint]}"
        _wrk(url, 2, 16)  # warm-up: connections, thread pool, JIT-free but caches warm
        service = psutil.Process(executor.process.pid)  # opentelemetry-instrument execs: same pid
        before = _cpu_seconds(service)
        rps, requests = _wrk_run(url, seconds, 16)
        after = _cpu_seconds(service)
        own, children = (1000 * (a - b) / requests for a, b in zip(after, before, strict=True))
        return rps, own, children


@contextmanager
def _servers() -> Iterator[dict[str, str]]:
    """PostgreSQL and RabbitMQ for the realistic endpoint; yields the service's environment."""
    workdir = Path(tempfile.mkdtemp(prefix="otel-kit-bench-"))
    postgres, rabbitmq = start_postgres(workdir / "pg"), start_rabbitmq(workdir / "rmq")
    try:
        dsn = f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres"
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE orders (id text PRIMARY KEY, items int)")
            cur.execute("INSERT INTO orders VALUES ('bench-1', 2)")
        base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        yield {**base, "BENCH_DSN": dsn, "BENCH_AMQP_PORT": str(rabbitmq.port)}
    finally:
        postgres.stop()
        rabbitmq.stop()


@app.command()
def throughput(
    collector_binary: Annotated[Path, typer.Option(envvar="BENCH_COLLECTOR")],
    zero_code_python: Annotated[str, typer.Option(envvar="BENCH_ZERO_CODE_PYTHON")],
    modes: str = "bare,kit,kit-in-process,zero-code",
    endpoints: str = "trivial,realistic",
    dead_endpoint: Annotated[bool, typer.Option(help="also run the kit with its OTLP endpoint down")] = False,
    rounds: int = 3,
    seconds: int = 10,
    output: Path = ROOT / "benchmarks" / "results" / "overhead.json",
) -> None:
    mode_list = modes.split(",")
    results: dict[str, dict[str, list[float]]] = {e: {m: [] for m in mode_list} for e in endpoints.split(",")}
    cpu: dict[str, dict[str, list[tuple[float, float]]]] = {e: {} for e in results}
    with _servers() as base, collector(collector_binary) as otlp_port:
        endpoint_url = f"http://127.0.0.1:{otlp_port}"
        dead_url = f"http://127.0.0.1:{free_port()}"
        for round_ in range(1, rounds + 1):
            for endpoint in results:
                runs = [(m, endpoint_url) for m in mode_list]
                if dead_endpoint:
                    runs.append(("kit", dead_url))
                if round_ % 2 == 0:  # each mode early in half the rounds: drift within a round cancels
                    runs.reverse()
                for mode, url in runs:
                    label = mode if url == endpoint_url else "kit, endpoint down"
                    env = _mode_env(mode, url, base)
                    rps, own_ms, export_ms = measure(mode, endpoint, env, seconds, zero_code_python)
                    results[endpoint].setdefault(label, []).append(rps)
                    cpu[endpoint].setdefault(label, []).append((own_ms, export_ms))
                    console.log(
                        f"round {round_}/{rounds} {endpoint:9} {label:20} {rps:8.0f} req/s, "
                        f"CPU {own_ms:.3f} ms a request (+{export_ms:.3f} export process)"
                    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"req_per_s": results, "cpu_ms_per_request": cpu}, indent=2))
    _report(results, cpu)


@app.command()
def soak(
    seconds: int = 300,
    step: int = 15,
    endpoint: str = "realistic",
    output: Path = ROOT / "benchmarks" / "results" / "soak.json",
) -> None:
    """The kit with its OTLP endpoint down under steady load: resident memory every `step` seconds
    (the service and its span export process)."""
    with _servers() as base:
        env = _mode_env("kit", f"http://127.0.0.1:{free_port()}", base)
        port = free_port()
        executor = HTTPExecutor(
            _mode_command("kit", port, sys.executable),
            url=f"http://127.0.0.1:{port}/trivial",
            method="GET",
            cwd=str(ROOT),
            envvars=env,
            timeout=60,
        )
        samples: list[tuple[int, float, float]] = []
        with executor:
            pid = executor.process.pid
            url = f"http://127.0.0.1:{port}{ENDPOINTS[endpoint]}"
            for elapsed in range(step, seconds + 1, step):
                rps = _wrk(url, step, 16)
                service = psutil.Process(pid)
                rss = _mib(service.memory_info().rss)
                exporters = service.children()  # the span export process
                child_rss = sum(_mib(child.memory_info().rss) for child in exporters)
                samples.append((elapsed, rps, rss, child_rss))
                console.log(
                    f"{elapsed:4d} s {rps:7.0f} req/s  RSS {rss:6.1f} MiB, export {child_rss:6.1f} MiB"
                )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(samples))
    first, last = samples[0][2], samples[-1][2]
    Console().print(f"RSS after {samples[0][0]} s: {first:.1f} MiB, after {samples[-1][0]} s: {last:.1f} MiB")
    Console().print(f"export process: {samples[0][3]:.1f} MiB, then {samples[-1][3]:.1f} MiB")


def _mib(size: int) -> float:
    return size / 2**20


def _report(results: dict[str, dict[str, list[float]]], cpu: dict[str, dict[str, list]]) -> None:
    table = Table("endpoint", "mode", "median req/s", "x bare", "CPU ms/request (+ export process)", "runs")
    for endpoint, by_mode in results.items():
        bare = statistics.median(by_mode["bare"]) if by_mode.get("bare") else None
        for mode, values in by_mode.items():
            median = statistics.median(values)
            ratio = f"{median / bare:.2f}" if bare else "-"
            own = statistics.median(c[0] for c in cpu[endpoint][mode])
            export = statistics.median(c[1] for c in cpu[endpoint][mode])
            runs = ", ".join(f"{v:.0f}" for v in values)
            table.add_row(endpoint, mode, f"{median:.0f}", ratio, f"{own:.3f} (+{export:.3f})", runs)
    Console().print(table)
    for endpoint, by_mode in results.items():
        up, down = by_mode.get("kit"), by_mode.get("kit, endpoint down")
        if up and down:
            per_round = sorted(d / u for d, u in zip(down, up, strict=True))
            up_cpu, down_cpu = (
                statistics.median(c[0] for c in cpu[endpoint][m]) for m in ("kit", "kit, endpoint down")
            )
            ratio = statistics.median(down) / statistics.median(up)
            spread = f"{per_round[0]:.2f}-{per_round[-1]:.2f}, median {statistics.median(per_round):.2f}"
            Console().print(
                f"{endpoint}: endpoint down / up: {ratio:.2f}x req/s (within each round {spread}); "
                f"service CPU a request {down_cpu:.3f} / {up_cpu:.3f} ms"
            )


if __name__ == "__main__":
    app()
