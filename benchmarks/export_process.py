"""Spans lost when a service's span export process dies under load.

A service makes spans in a tight loop (benchmarks/_span_load.py) and its export process is
killed with SIGKILL mid-run; the real collector counts the spans it accepted
(otelcol_receiver_accepted_spans). Lost = made - accepted; the service's own queue-full drops
are reported apart. Run through benchmarks/run:

    benchmarks/run export_process --rounds 3
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.overhead import collector  # noqa: E402
from tests.integration.servers import free_port  # noqa: E402

console = Console(stderr=True)
app = typer.Typer(add_completion=False)


def _accepted(metrics_url: str) -> float:
    families = text_string_to_metric_families(httpx.get(metrics_url, timeout=5).text)
    return sum(
        sample.value
        for family in families
        if family.name == "otelcol_receiver_accepted_spans"
        for sample in family.samples
        if not sample.name.endswith("_created")
    )


def _settled(metrics_url: str, before: float, expected: int, timeout: float = 30) -> float:
    """Accepted spans since `before`, once all expected have arrived or the count stops moving."""
    deadline, last, still = time.monotonic() + timeout, -1.0, 0
    while time.monotonic() < deadline:
        accepted = _accepted(metrics_url) - before
        if accepted >= expected:
            return accepted
        still = still + 1 if accepted == last else 0
        if still >= 10:  # unchanged for a second: the rest is not coming
            return accepted
        last = accepted
        time.sleep(0.1)  # polling the collector's counter with a deadline
    return _accepted(metrics_url) - before


@app.command()
def kill(
    collector_binary: Annotated[Path, typer.Option(envvar="BENCH_COLLECTOR")],
    modes: str = "auto,true",
    rounds: int = 3,
    seconds: float = 10,
    kill_at: Annotated[float, typer.Option(help="seconds into the run")] = 6,
    pause: Annotated[float, typer.Option(help="seconds between 100-span bursts: sets the rate")] = 0.003,
    output: Path = ROOT / "benchmarks" / "results" / "export-process.json",
) -> None:
    metrics_port = free_port()
    results: dict[str, list[dict]] = {mode: [] for mode in modes.split(",")}
    with collector(collector_binary, metrics_port) as otlp_port:
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        for round_ in range(1, rounds + 1):
            for mode in results:
                env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
                env.update(
                    OTEL_KIT_EXPORT_PROCESS=mode, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_port}"
                )
                before = _accepted(metrics_url)
                load = [
                    sys.executable,
                    str(ROOT / "benchmarks" / "_span_load.py"),
                    str(seconds),
                    str(kill_at),
                    str(pause),
                ]
                run = subprocess.run(load, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
                made = json.loads(run.stdout.splitlines()[-1])
                if not made["killed"]:
                    raise RuntimeError(
                        f"{mode}: the export process was not running at {kill_at} s\n{run.stderr}"
                    )
                accepted = _settled(metrics_url, before, made["spans"])
                made.update(rate=made["spans"] / seconds, accepted=accepted, lost=made["spans"] - accepted)
                results[mode].append(made)
                console.log(
                    f"round {round_}/{rounds} {mode:5} {made['rate']:7.0f} spans/s: made {made['spans']}, "
                    f"accepted {accepted:.0f}, lost {made['lost']:.0f} (queue-full drops {made['dropped']})"
                )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    table = Table(
        "OTEL_KIT_EXPORT_PROCESS", "spans/s", "lost per kill (made - accepted)", "of which queue-full drops"
    )
    for mode, runs in results.items():
        table.add_row(
            mode,
            ", ".join(f"{r['rate']:.0f}" for r in runs),
            ", ".join(f"{r['lost']:.0f}" for r in runs),
            ", ".join(str(r["dropped"]) for r in runs),
        )
    Console().print(table)


if __name__ == "__main__":
    app()
