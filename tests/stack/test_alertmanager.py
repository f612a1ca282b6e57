"""Alertmanager pages each team's PagerDuty service with the route's own severity, holds a team's
warnings while its critical fires, and resolves what it paged: the committed config, checked
by amtool and run by a real Alertmanager against a PagerDuty Events API endpoint the test runs.
"""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from mirakuru import HTTPExecutor

from tests.helpers import load_script, serve
from tests.integration.servers import free_port
from tests.stack_fixtures import PROMETHEUS, REPO, eventually

stack_tool = load_script(REPO / "deploy/local/stack.py")
pagerduty = load_script(REPO / "deploy/pagerduty/local_events.py")
COMMITTED = REPO / "deploy/alertmanager/alertmanager.yml"
ALERTMANAGER, AMTOOL = "/usr/bin/prometheus-alertmanager", "/usr/bin/amtool"
DASHBOARDS = {path.stem for path in (REPO / "deploy/grafana/dashboards").rglob("*.json")}


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, check=False)


def receiver_for(team: str, severity: str) -> str:
    return f"{team}-{'critical' if severity == 'critical' else 'warning'}"


def test_the_committed_and_the_local_config_are_valid(tmp_path: Path) -> None:
    local = stack_tool.render_alertmanager_config(tmp_path, "http://127.0.0.1:9")
    for config in (COMMITTED, local):
        done = amtool("check-config", str(config))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "11 receivers" in done.stdout, done.stdout
        assert "1 templates" in done.stdout, done.stdout
    text = local.read_text()
    assert "events.pagerduty.com" not in text
    assert "/etc/alertmanager" not in text


ROUTES = [
    *(({"team": team, "severity": severity}, receiver_for(team, severity))
      for team in stack_tool.TEAMS for severity in ("critical", "warning", "info")),
    ({"alertname": "Watchdog", "team": "platform", "severity": "info"}, "deadmans-switch"),
    ({"alertname": "SomeoneForgotTheTeam", "severity": "critical"}, "platform-warning"),
]  # fmt: skip


@pytest.mark.parametrize(("labels", "receiver"), ROUTES, ids=lambda value: str(value))
def test_every_route_reaches_its_receiver(labels: dict[str, str], receiver: str) -> None:
    done = amtool(
        "config", "routes", "test", f"--config.file={COMMITTED}", *(f"{k}={v}" for k, v in labels.items())
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == receiver


def test_every_loaded_alert_rule_routes_to_its_team_and_severity(stack: None) -> None:
    groups = httpx.get(f"{PROMETHEUS}/api/v1/rules", params={"type": "alert"}, timeout=10).json()["data"][
        "groups"
    ]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 20
    for rule in rules:
        labels = {"alertname": rule["name"], **rule["labels"]}
        expected = (
            "deadmans-switch"
            if rule["name"] == "Watchdog"
            else receiver_for(labels["team"], labels["severity"])
        )
        done = amtool(
            "config", "routes", "test", f"--config.file={COMMITTED}", *(f"{k}={v}" for k, v in labels.items())
        )
        assert done.stdout.strip() == expected, rule["name"]
        assert rule["annotations"].get("dashboard") in DASHBOARDS, f"{rule['name']}: no such dashboard"


def _alert(name: str, severity: str, team: str, **labels: str) -> dict:
    return {
        "labels": {"alertname": name, "severity": severity, "team": team, **labels},
        "annotations": {
            "summary": f"{name} for the test",
            "runbook_url": f"docs/oncall/postgresql.md#{name.lower()}",
            "dashboard": "otel-kit-postgresql",
        },
        "startsAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    }


def test_a_critical_pages_the_teams_warnings_wait_and_each_page_resolves(tmp_path: Path) -> None:
    store = pagerduty.Store(None)
    with serve(pagerduty.make_app(store)) as events_api:
        config = stack_tool.render_alertmanager_config(tmp_path / "alertmanager", events_api)
        port = free_port()
        command = [ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
                   f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]  # fmt: skip
        with HTTPExecutor(command, url=f"http://127.0.0.1:{port}/-/ready", method="GET", timeout=30):
            api = f"http://127.0.0.1:{port}/api/v2"
            alerts = [
                _alert("PostgresDown", "critical", "databases", database="shop"),
                _alert("PostgresLongLockWait", "warning", "databases", database="shop"),
                _alert("PostgresDeadlocks", "warning", "databases", database="mes"),  # another db: pages
                _alert("S3RequestsRefused", "warning", "storage", bucket="production-docs", api="PutObject"),
            ]
            httpx.post(f"{api}/alerts", json=alerts, timeout=10).raise_for_status()

            def triggers() -> dict[str, dict] | None:
                found = {e["event"]["payload"]["class"]: e for e in store.events if e["accepted"]}
                return (
                    found
                    if {"PostgresDown", "PostgresDeadlocks", "S3RequestsRefused"} <= found.keys()
                    else None
                )

            paged = eventually(triggers, timeout=60)
            inhibited = httpx.get(
                f"{api}/alerts", params={"filter": 'alertname="PostgresLongLockWait"'}
            ).json()
            assert inhibited[0]["status"]["inhibitedBy"], "the warning under a firing critical was not held"
            assert "PostgresLongLockWait" not in paged
            assert all(event["accepted"] for event in store.events), [e["errors"] for e in store.events]
            for name, team, severity in (("PostgresDown", "databases", "critical"),
                                         ("S3RequestsRefused", "storage", "warning")):  # fmt: skip
                event = paged[name]["event"]
                assert event["routing_key"] == hashlib.md5(team.encode()).hexdigest()  # the team's service
                assert event["payload"]["severity"] == severity
                assert event["payload"]["summary"] == f"{name} for the test"
                runbook, dashboard = (link["href"] for link in event["links"][:2])
                assert Path(urlsplit(runbook).path).is_file(), runbook
                assert dashboard.endswith("/d/otel-kit-postgresql")

            now = datetime.now(UTC)
            ended = [{**alert, "endsAt": now.isoformat()} for alert in alerts]
            httpx.post(f"{api}/alerts", json=ended, timeout=10).raise_for_status()

            def resolves() -> set[str] | None:
                keys = {e["dedup_key"] for e in store.events if e["event"]["event_action"] == "resolve"}
                wanted = {
                    paged[name]["dedup_key"]
                    for name in ("PostgresDown", "PostgresDeadlocks", "S3RequestsRefused")
                }
                return keys if wanted <= keys else None

            eventually(resolves, timeout=90, interval=1)  # sent at the group's next interval (1 min)
