"""Throughput of one FastAPI service: bare vs otel_kit.init vs opentelemetry-instrument defaults.

Every mode exports every span (100% sampling) over OTLP to the real collector, gRPC or
http/protobuf. Two deployment shapes: `--shapes 1` pins the service and every process it
starts to one core (the common container limit), wrk and the collector to the others;
`--shapes 2` gives the service two cores. Modes run interleaved, round after round, and the
median of the rounds is reported, as a ratio to bare in the same shape and run, with the
CPU a request of the service and its children. Run through benchmarks/run:

    benchmarks/run overhead throughput --shapes 1,2 --protocols grpc,http/protobuf
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
def collector(
    binary: Path, metrics_port: int | None = None, http_port: int | None = None, cpus: str | None = None
) -> Iterator[int]:
    """The real collector as OTLP receiver; yields its gRPC port (http/protobuf on `http_port`).
    Its own metrics (spans accepted) on `metrics_port` at /metrics; on `cpus` if given."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="otel-kit-bench-")) / "collector.log"
    config = ROOT / "benchmarks" / "otelcol-receiver.yaml"
    executor = TCPExecutor(
        [*_pinned(cpus), str(binary), "--config", str(config)],
        host="127.0.0.1",
        port=port,
        envvars={
            **os.environ,
            "BENCH_OTLP_PORT": str(port),
            "BENCH_OTLP_HTTP_PORT": str(http_port or free_port()),
            "BENCH_METRICS_PORT": str(metrics_port or free_port()),
        },
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        timeout=30,
    )
    with executor:
        yield port


def _pinned(cpus: str | None) -> list[str]:
    """A command prefix that runs a process, and every process it starts, on `cpus` ("0", "0,1")."""
    return ["taskset", "-c", cpus] if cpus else []


def shape_cpus(cores: int) -> tuple[str, str | None]:
    """(the service's CPUs, the load generator's and receiver's) for a shape of `cores` cores.

    The service gets the first `cores` of this process's CPUs; wrk and the collector the
    rest, or share them when none is left (two cores on a two-core machine).
    """
    available = sorted(os.sched_getaffinity(0))
    if cores > len(available):
        raise typer.BadParameter(f"--shapes {cores}: this machine has {len(available)} usable cores")
    rest = available[cores:]
    return ",".join(map(str, available[:cores])), ",".join(map(str, rest)) or None


def _mode_command(mode: str, port: int, zero_code_python: str, cpus: str | None = None) -> list[str]:
    uvicorn = ["-m", "uvicorn", "benchmarks.app:app", "--port", str(port), "--log-level", "warning"]
    if mode == "zero-code":
        instrument = str(Path(zero_code_python).parent / "opentelemetry-instrument")
        return [*_pinned(cpus), instrument, zero_code_python, *uvicorn]
    return [*_pinned(cpus), sys.executable, *uvicorn]


def _mode_env(mode: str, otlp_endpoint: str, base: dict[str, str], protocol: str = "grpc") -> dict[str, str]:
    env = {**base, "BENCH_MODE": "kit" if mode.startswith("kit") else mode}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    env["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
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


def _wrk(url: str, seconds: int, connections: int, cpus: str | None = None) -> float:
    return _wrk_run(url, seconds, connections, cpus)[0]


def _wrk_run(url: str, seconds: int, connections: int, cpus: str | None = None) -> tuple[float, int]:
    """(requests a second, requests) of one wrk run; any failed response fails the benchmark."""
    command = [*_pinned(cpus), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), requests


def _cpu_seconds(process: psutil.Process) -> tuple[float, float]:
    """CPU time of the service, and of every process under it (the span export process) so far."""
    own = process.cpu_times()
    children = 0.0
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = child.cpu_times()
            children += times.user + times.system
    return own.user + own.system, children


def measure(
    mode: str,
    endpoint: str,
    env: dict[str, str],
    seconds: int,
    zero_code_python: str,
    cpus: tuple[str | None, str | None] = (None, None),
) -> tuple[float, float, float]:
    """Requests a second, and CPU ms a request of the service and of its export process.

    CPU per request is the steadier measure where two modes should cost the same (endpoint
    down against up): throughput on 2 shared cores moves 10-20% between identical runs.
    """
    service_cpus, load_cpus = cpus
    port = free_port()
    executor = HTTPExecutor(
        _mode_command(mode, port, zero_code_python, service_cpus),
        url=f"http://127.0.0.1:{port}/trivial",
        method="GET",
        cwd=str(ROOT),
        envvars=env,
        timeout=60,
    )
    with executor:
        url = f"http://127.0.0.1:{port}{ENDPOINTS[endpoint]}"
        _wrk(url, 2, 16, load_cpus)  # warm-up: connections, thread pool, caches
        service = psutil.Process(executor.process.pid)  # taskset and opentelemetry-instrument exec: same pid
        before = _cpu_seconds(service)
        rps, requests = _wrk_run(url, seconds, 16, load_cpus)
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


PROTOCOLS = ("grpc", "http/protobuf")
# By endpoint, then run label: (req/s, service CPU ms, children CPU ms) of each round.
Results = dict[str, dict[str, list[tuple[float, float, float]]]]


def _runs(
    modes: list[str], protocols: list[str], receivers: dict[str, str], dead_url: str | None
) -> list[tuple[str, str, str, str]]:
    """(label, mode, protocol, OTLP endpoint) of one round: bare once, each other mode per protocol."""
    runs = [("bare", "bare", "grpc", receivers["grpc"])]
    for protocol in protocols:
        runs += [
            (f"{mode}, {protocol}", mode, protocol, receivers[protocol]) for mode in modes if mode != "bare"
        ]
        if dead_url:
            runs.append((f"kit, endpoint down, {protocol}", "kit", protocol, dead_url))
    return runs


def _shape(
    shape: int,
    cpus: tuple[str, str | None],
    collector_binary: Path,
    zero_code_python: str,
    base: dict[str, str],
    *,
    modes: list[str],
    endpoints: list[str],
    protocols: list[str],
    dead_endpoint: bool,
    rounds: int,
    seconds: int,
) -> Results:
    """Every round of one shape, against a collector on the load generator's cores."""
    results: Results = {}
    http_port = free_port()
    with collector(collector_binary, http_port=http_port, cpus=cpus[1]) as grpc_port:
        receivers = {
            "grpc": f"http://127.0.0.1:{grpc_port}",
            "http/protobuf": f"http://127.0.0.1:{http_port}",
        }
        dead_url = f"http://127.0.0.1:{free_port()}" if dead_endpoint else None
        for round_ in range(1, rounds + 1):
            for endpoint in endpoints:
                runs = _runs(modes, protocols, receivers, dead_url)
                if round_ % 2 == 0:  # each mode early in half the rounds: drift within a round cancels
                    runs.reverse()
                for label, mode, protocol, url in runs:
                    env = _mode_env(mode, url, base, protocol)
                    measured = measure(mode, endpoint, env, seconds, zero_code_python, cpus)
                    results.setdefault(endpoint, {}).setdefault(label, []).append(measured)
                    rps, own_ms, children_ms = measured
                    console.log(
                        f"{shape} core(s), round {round_}/{rounds} {endpoint:9} {label:32} {rps:8.0f} req/s, "
                        f"CPU {own_ms:.3f} ms a request (+{children_ms:.3f} children)"
                    )
    return results


@app.command()
def throughput(
    collector_binary: Annotated[Path, typer.Option(envvar="BENCH_COLLECTOR")],
    zero_code_python: Annotated[str, typer.Option(envvar="BENCH_ZERO_CODE_PYTHON")],
    modes: str = "bare,kit,kit-in-process,zero-code",
    endpoints: str = "trivial,realistic",
    shapes: Annotated[str, typer.Option(help="cores the service gets: 1, 2 or 1,2")] = "2",
    protocols: Annotated[str, typer.Option(help="grpc, http/protobuf or both")] = "grpc",
    dead_endpoint: Annotated[bool, typer.Option(help="also run the kit with its OTLP endpoint down")] = False,
    rounds: int = 3,
    seconds: int = 10,
    output: Path = ROOT / "benchmarks" / "results" / "overhead.json",
) -> None:
    mode_list = modes.split(",")
    if "bare" not in mode_list:
        raise typer.BadParameter(f"--modes {modes!r}: include bare, the ratios are to it")
    protocol_list = protocols.split(",")
    if unknown := [p for p in protocol_list if p not in PROTOCOLS]:
        raise typer.BadParameter(
            f"--protocols {protocols!r}: {unknown[0]!r} is not one of {', '.join(PROTOCOLS)}"
        )
    try:
        shape_list = [int(s) for s in shapes.split(",")]
    except ValueError:
        raise typer.BadParameter(
            f"--shapes {shapes!r}: a comma-separated list of core counts, e.g. 1,2"
        ) from None
    cpus_of = {shape: shape_cpus(shape) for shape in shape_list}  # refuses a shape the machine lacks
    results: dict[str, Results] = {}
    with _servers() as base:
        for shape in shape_list:
            results[str(shape)] = _shape(
                shape, cpus_of[shape], collector_binary, zero_code_python, base,
                modes=mode_list, endpoints=endpoints.split(","), protocols=protocol_list,
                dead_endpoint=dead_endpoint, rounds=rounds, seconds=seconds,
            )  # fmt: skip
    output.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "cpus": len(os.sched_getaffinity(0)),
        "shapes": {s: dict(zip(("service", "load"), cpus_of[s], strict=True)) for s in shape_list},
    }
    output.write_text(
        json.dumps({"machine": machine, "seconds": seconds, "rounds": rounds, "results": results}, indent=2)
    )
    _report(results)


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


def _report(results: dict[str, Results]) -> None:
    table = Table(
        "cores",
        "endpoint",
        "mode",
        "median req/s",
        "x bare",
        "x zero-code",
        "CPU ms a request (children)",
        "runs",
    )
    for shape, by_endpoint in results.items():
        for endpoint, by_label in by_endpoint.items():
            median = {label: statistics.median(r[0] for r in runs) for label, runs in by_label.items()}
            for label, runs in by_label.items():
                protocol = label.rpartition(", ")[2]
                zero = median.get(f"zero-code, {protocol}")
                own = statistics.median(r[1] for r in runs)
                children = statistics.median(r[2] for r in runs)
                table.add_row(
                    shape,
                    endpoint,
                    label,
                    f"{median[label]:.0f}",
                    f"{median[label] / median['bare']:.2f}",
                    f"{median[label] / zero:.2f}" if zero and label != "bare" else "-",
                    f"{own + children:.3f} ({children:.3f})",
                    ", ".join(f"{r[0]:.0f}" for r in runs),
                )
            for label in by_label:
                if ", endpoint down, " in label:
                    up_label = label.replace(", endpoint down", "")
                    down, up = by_label[label], by_label[up_label]
                    per_round = sorted(d[0] / u[0] for d, u in zip(down, up, strict=True))
                    Console().print(
                        f"{shape} core(s), {endpoint}: {label} / {up_label}: "
                        f"{median[label] / median[up_label]:.2f}x req/s (within each round "
                        f"{per_round[0]:.2f}-{per_round[-1]:.2f}); CPU a request "
                        f"{statistics.median(r[1] + r[2] for r in down):.3f} / "
                        f"{statistics.median(r[1] + r[2] for r in up):.3f} ms"
                    )
    Console(width=200).print(table)


if __name__ == "__main__":
    app()
