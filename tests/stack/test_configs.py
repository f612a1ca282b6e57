"""Every config of the stack passes its own tool's check: the binaries that run it say it is valid."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def built(name: str) -> str:
    """The cached binary deploy/local/stack setup built (build-go.sh reuses it at once)."""
    result = subprocess.run(
        ["bash", str(REPO / "deploy/local/build-go.sh"), name], capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()[-1]


def check(*command: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=REPO, env={**os.environ, **(env or {})}
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.mark.parametrize("bind_host", ["127.0.0.1", "0.0.0.0"])  # local stack, compose
def test_collector_config_is_valid(bind_host: str) -> None:
    check(
        built("otelcol"), "validate", "--config", "collector/otelcol-config.yaml",
        env={"OTELCOL_BIND_HOST": bind_host, "JAEGER_OTLP_ENDPOINT": "jaeger:4327"},
    )  # fmt: skip


def test_jaeger_config_is_valid() -> None:
    check(built("jaeger"), "validate", "--config", "deploy/jaeger/config.yaml")


def test_prometheus_config_and_targets_are_valid() -> None:
    out = check("promtool", "check", "config", "deploy/prometheus/prometheus.yml")
    assert "SUCCESS" in out
    # The compose targets are the same jobs with other addresses.
    local = {p.name for p in (REPO / "deploy/prometheus/targets").glob("*.yml")}
    compose = {p.name for p in (REPO / "deploy/prometheus/targets-compose").glob("*.yml")}
    assert local == compose


@pytest.mark.parametrize("rules", ["order-funnel", "red", "alerts-infra", "alerts-services"])
def test_recording_rules_compute_what_they_say(rules: str) -> None:
    out = check("promtool", "test", "rules", f"deploy/prometheus/tests/{rules}.test.yml")
    assert "SUCCESS" in out


def test_alertmanager_config_is_valid() -> None:
    check("amtool", "check-config", "deploy/alertmanager/alertmanager.yml")


def test_compose_file_parses() -> None:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose (Debian package) is installed by scripts/test"
    out = check(compose, "-f", "deploy/compose.yaml", "config")
    # Both the collector and Jaeger read the committed files, with the container addresses.
    assert "JAEGER_OTLP_ENDPOINT: jaeger:4327" in out
    assert "PROMETHEUS_URL: http://prometheus:9090" in out
    # Jaeger (user 10001) keeps its traces in a volume whose data folder is made its own first.
    assert "JAEGER_BADGER_DIR: /var/lib/jaeger/data" in out
    assert "chown -R 10001:10001 /var/lib/jaeger/data" in out
