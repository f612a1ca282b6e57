"""The whole local stack (deploy/local) for a session, and how tests read its backends.

If the stack already runs (a demo, say) it is used and left running; otherwise it is
started here and stopped at the end. Tests measure increases of counters, so data that
was there before does not disturb them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from mirakuru import HTTPExecutor

REPO = Path(__file__).resolve().parents[1]
STACK = REPO / "deploy/local/stack"
PROMETHEUS = "http://127.0.0.1:9090"
JAEGER = "http://127.0.0.1:16686"
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.5) -> T:
    """Poll until probe() returns something truthy: telemetry arrives asynchronously (batching,
    scrape intervals), so a test waits for the state it expects, up to a deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not reached within {timeout} s; last probe returned {last!r}")


def prom_query(query: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{PROMETHEUS}/api/v1/query", params={"query": query}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]["result"]


def prom_value(query: str) -> float:
    """The single value of an instant query, 0 when it has no series yet."""
    result = prom_query(query)
    assert len(result) <= 1, f"{query} matched several series: {result}"
    return float(result[0]["value"][1]) if result else 0.0


def jaeger_get(path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(f"{JAEGER}{path}", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="session")
def stack() -> Iterator[None]:
    already_up = subprocess.run([str(STACK), "status"], capture_output=True, check=False).returncode == 0
    if not already_up:
        subprocess.run([str(STACK), "start"], check=True)
    yield
    if not already_up:
        subprocess.run([str(STACK), "stop"], check=True)


def start_app(app: str, port: int, env: dict[str, str], log: Path) -> HTTPExecutor:
    """`uvicorn APP --port PORT` from the repo, ready once GET /health answers.

    Output goes to `log`: a pipe nobody reads fills up and then blocks the server.
    """
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port)]
    executor = HTTPExecutor(
        command,
        url=f"http://127.0.0.1:{port}/health",
        method="GET",
        timeout=60,
        envvars=env,
        cwd=str(REPO),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return executor.start()
