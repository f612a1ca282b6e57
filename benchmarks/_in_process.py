"""Call benchmarks/app.py's ASGI app in-process: `python _in_process.py PATH WARMUP REQUESTS`.

No uvicorn and no socket between the load and the app, so an instruction count of this
process is the app's and its telemetry's. The mode (bare, kit, ...) comes from the
environment, as for the app under uvicorn.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.app import app


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict) -> None:
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise RuntimeError(f"status {message['status']}")


async def _requests(path: str, count: int) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    for _ in range(count):
        await app(dict(scope), _receive, _send)


def main() -> None:
    path, warmup, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    asyncio.run(_requests(path, warmup + count))
    if os.environ.get("BENCH_MODE") == "kit":
        import otel_kit

        otel_kit.shutdown()


if __name__ == "__main__":
    main()
