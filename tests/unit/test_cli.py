"""otel-kit's answers when it cannot give a verdict: clear words and exit codes scripts can use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.servers import free_port

CLI = str(Path(sys.executable).parent / "otel-kit")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, check=False, env={"COLUMNS": "200"})


def test_jaeger_unreachable_is_exit_5_naming_the_url_and_the_setting() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run("trace", "ord-1", "--jaeger", url)
    assert result.returncode == 5
    assert f"Jaeger at {url} did not answer" in result.stderr
    assert "OTEL_KIT_JAEGER_URL" in result.stderr
    assert run("lost-orders", "--jaeger", url).returncode == 5


def test_bad_settings_are_usage_errors_naming_the_value_and_the_form() -> None:
    result = run("lost-orders", "--since", "fifteen")
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "--since='fifteen': expected a duration such as 30s, 15m, 2h or 1d" in message
    result = run("trace", "ord-1", "--done", "shop")
    assert result.returncode == 2
    assert "expected SERVICE:OPERATION" in " ".join(result.stderr.split())


def test_logs_with_elasticsearch_unreachable_is_exit_6_naming_the_url_and_the_setting() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run("logs", "--order", "ord-1", "--url", url)
    assert result.returncode == 6
    message = " ".join(result.stderr.split())
    assert f"Elasticsearch at {url} did not answer" in message
    assert "OTEL_KIT_ELASTICSEARCH_URL" in message


def test_logs_bad_severity_is_a_usage_error_naming_the_levels() -> None:
    result = run("logs", "--severity", "loud")
    assert result.returncode == 2
    assert "--severity='loud': expected one of trace, debug, info, warn, error, fatal" in " ".join(
        result.stderr.split()
    )
