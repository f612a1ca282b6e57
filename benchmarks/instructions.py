"""Instructions one request costs the service, bare and with the kit, counted by valgrind.

Throughput on two shared cores moves 10-20% between identical runs; an instruction count
moves ~1%. So this is where a per-call change is measured: benchmarks/app.py's ASGI app is
called in-process (benchmarks/_in_process.py: no uvicorn, no network) under cachegrind,
twice with different numbers of requests; the difference divided by the difference in
requests is one request, start-up and shutdown cancelled. Only the service process is
counted: the span export process is a separate program valgrind does not follow. Run
through benchmarks/run (it installs valgrind and builds the collector):

    benchmarks/run instructions --modes bare,kit,kit-no-export,kit-unsampled
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.overhead import ENDPOINTS, _mode_env, _servers, collector  # noqa: E402

app = typer.Typer(add_completion=False)
console = Console(stderr=True)
# zero-code runs through opentelemetry-instrument, which execs a second interpreter that
# valgrind would not follow.
_MODES = ("bare", "kit", "kit-in-process", "kit-no-export", "kit-unsampled")
_WARMUP = 200  # requests before either count starts to matter: caches, lazy imports, the export process


def _env(mode: str, otlp_endpoint: str, base: dict[str, str]) -> dict[str, str]:
    env = _mode_env(mode, otlp_endpoint, base)
    if mode == "kit":
        # Under valgrind the service makes far fewer spans a second than AUTO_MIN_RATE, so
        # `auto` would encode in-process; under load it hands rows to the export process.
        env["OTEL_KIT_EXPORT_PROCESS"] = "true"
    return env


def _count(path: str, requests: int, env: dict[str, str]) -> int:
    """Instructions executed by the service process for _WARMUP + `requests` requests."""
    with tempfile.TemporaryDirectory(prefix="otel-kit-vg-") as tmp:
        process = subprocess.Popen(
            [
                "valgrind",
                "--tool=cachegrind",
                "--cache-sim=no",
                "--cachegrind-out-file=/dev/null",
                f"--log-file={tmp}/%p.log",
                sys.executable,
                str(ROOT / "benchmarks" / "_in_process.py"),
                path,
                str(_WARMUP),
                str(requests),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, stderr = process.communicate()
        log_file = Path(tmp) / f"{process.pid}.log"
        log = log_file.read_text() if log_file.exists() else ""
        if process.returncode != 0:
            raise RuntimeError(f"{path} ({env.get('BENCH_MODE')}) failed:\n{stderr[-2000:]}\n{log[-2000:]}")
        found = re.search(r"I\s+refs:\s+([\d,]+)", log)
        if found is None:
            raise RuntimeError(f"no instruction count in valgrind's log:\n{log[-2000:]}")
        return int(found.group(1).replace(",", ""))


@app.command()
def main(
    collector_binary: Annotated[Path, typer.Option(envvar="BENCH_COLLECTOR")],
    modes: str = "bare,kit,kit-no-export,kit-unsampled",
    endpoints: str = "trivial,realistic",
    requests: Annotated[str, typer.Option(help="the two run lengths, in requests")] = "100,500",
    jobs: Annotated[int, typer.Option(help="valgrind runs at once")] = 2,
    output: Path = ROOT / "benchmarks" / "results" / "instructions.json",
) -> None:
    try:
        short, long = (int(n) for n in requests.split(","))
    except ValueError:
        raise typer.BadParameter(f"--requests {requests!r}: two request counts, e.g. 100,500") from None
    if not 0 < short < long:
        raise typer.BadParameter(f"--requests {requests!r}: two request counts, the second the larger")
    mode_list, endpoint_list = modes.split(","), endpoints.split(",")
    unknown = set(mode_list) - set(_MODES)
    if unknown:
        names = ", ".join(sorted(unknown))
        known = ", ".join(_MODES)
        raise typer.BadParameter(f"--modes {modes!r}: {names}: not a mode this benchmark runs; use {known}")
    if "bare" not in mode_list:
        raise typer.BadParameter(f"--modes {modes!r}: include bare, the ratios are to it")
    runs = [(e, m, n) for e in endpoint_list for m in mode_list for n in (short, long)]
    counts: dict[tuple[str, str, int], int] = {}
    with _servers() as base, collector(collector_binary) as otlp_port, Progress(console=console) as progress:
        task = progress.add_task("valgrind runs", total=len(runs))

        def run(endpoint: str, mode: str, n: int) -> None:
            env = _env(mode, f"http://127.0.0.1:{otlp_port}", base)
            counts[endpoint, mode, n] = _count(ENDPOINTS[endpoint], n, env)
            progress.advance(task)

        with ThreadPoolExecutor(jobs) as pool:
            for future in [pool.submit(run, *r) for r in runs]:
                future.result()
    per_request = {
        e: {m: (counts[e, m, long] - counts[e, m, short]) // (long - short) for m in mode_list}
        for e in endpoint_list
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    results = {"instructions_per_request": per_request, "requests": [short, long]}
    output.write_text(json.dumps(results, indent=2))
    table = Table("endpoint", "mode", "instructions a request", "over bare", "bare / mode")
    for endpoint, by_mode in per_request.items():
        bare = by_mode["bare"]
        for mode, count in by_mode.items():
            table.add_row(endpoint, mode, f"{count:,}", f"{count - bare:+,}", f"{bare / count:.2f}")
    Console().print(table)


if __name__ == "__main__":
    app()
