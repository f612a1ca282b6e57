"""What the stack and flow benchmarks share: the local stack, and a results file per benchmark."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
STACK = REPO / "deploy/local/stack"
console = Console()


def ensure_stack() -> None:
    """Start the local stack unless it runs (start is idempotent and waits for readiness)."""
    if subprocess.run([str(STACK), "status"], capture_output=True, check=False).returncode != 0:
        subprocess.run([str(STACK), "start"], check=True)


def save(results: Path, section: str, numbers: dict) -> None:
    """Merge one section's numbers, dated, into the benchmark's JSON results, and show them."""
    data = json.loads(results.read_text()) if results.exists() else {}
    data[section] = {"date": time.strftime("%Y-%m-%d"), **numbers}
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps(data, indent=2) + "\n")
    console.print_json(data=data[section])
