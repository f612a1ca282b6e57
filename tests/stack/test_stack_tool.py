"""deploy/local/stack refuses to start with a clear message instead of a half-started stack."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.stack_fixtures import REPO


def test_a_missing_binary_is_named_with_where_it_comes_from(tmp_path) -> None:
    env = {
        **os.environ,
        "OTEL_KIT_STACK_DIR": str(tmp_path),
        "OTEL_KIT_MINIO_BIN": str(tmp_path / "no-minio-here"),
        "OTEL_KIT_JAEGER_BIN": str(tmp_path / "no-jaeger-here"),
        "OTEL_KIT_OTELCOL_BIN": str(tmp_path / "no-otelcol-here"),
    }
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy/local/stack.py"), "start"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert f"minio: {tmp_path / 'no-minio-here'} (from MinIO from its Go module" in message
    assert "jaeger:" in message
    assert "otelcol:" in message
    assert "run deploy/local/stack setup" in message
    assert not (tmp_path / "data").exists()  # nothing was started or created
