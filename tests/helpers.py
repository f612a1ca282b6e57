"""Helpers shared by the test layers."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import uvicorn


def run_python(
    code: str, env: dict[str, str] | None = None, timeout: float = 60, launcher: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Run a snippet in a fresh interpreter: init() sets process-wide providers once per process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FASTAPI_OTEL"))}
    return subprocess.run(
        [*launcher, sys.executable, "-c", textwrap.dedent(code)],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def serve(app: object) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread; yields its base URL.

    The listening socket is bound before the server starts, so a request made at once
    waits in the backlog instead of racing the start-up.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def load_script(path: Path) -> ModuleType:
    """A repository script (deploy/...) as a module, to test its functions without running it.

    Its folder is on sys.path, as when it runs: a script imports its sibling modules.
    """
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec.loader.exec_module(module)
    return module
