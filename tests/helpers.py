"""Helpers shared by the test layers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run_python(
    code: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run a snippet in a fresh interpreter: init() sets process-wide providers once per process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FASTAPI_OTEL"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
