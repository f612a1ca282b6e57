"""Every incident of deploy/local/incident, caused for real on the stack and the examples: its alert
pages through Alertmanager to the stack's PagerDuty Events API endpoint (each event checked
against PagerDuty's published schema), resolves with the same dedup key once the incident is
undone, and no other alert pages meanwhile.

The drill runs first among the e2e tests (the file's name sorts first), so that the pages of
the other tests' faults (the load's dead letters, the outages) do not overlap it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Examples
from tests.helpers import load_script
from tests.stack_fixtures import REPO

incident = load_script(REPO / "deploy/local/incident.py")
pagerduty = load_script(REPO / "deploy/pagerduty/local_events.py")

pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def drill(examples: Examples, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`deploy/local/incident drill --json`, as an on-call engineer runs it, on the e2e examples."""
    report = tmp_path_factory.mktemp("drill") / "drill.json"
    env = {**os.environ, **{f"{name.upper()}_URL": url for name, url in examples.urls.items()}}
    log = report.with_suffix(".log")
    with log.open("w") as output:
        drill = subprocess.Popen(
            [str(REPO / "deploy/local/incident"), "drill", "--json", str(report)],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            exit_code = drill.wait(timeout=2200)
        except subprocess.TimeoutExpired:
            drill.terminate()  # SIGTERM: the drill undoes its incidents before it ends
            exit_code = drill.wait(timeout=120)
    said = log.read_text()[-4000:]
    assert report.exists(), f"the drill wrote no report (exit {exit_code}):\n{said}"
    return {**json.loads(report.read_text()), "log": said, "exit": exit_code}


def _severity(event: dict) -> str:
    """The alert rule's own severity label, as Alertmanager lists the alert's labels."""
    firing = event["payload"]["custom_details"]["firing"]
    return next(line.split(" = ")[1] for line in firing.splitlines() if line.startswith(" - severity = "))


@pytest.mark.parametrize("name", list(incident.INCIDENTS))
def test_the_incident_pages_and_resolves_after_its_repair(drill: dict, name: str) -> None:
    outcome = next(o for o in drill["outcomes"] if o["incident"] == name)
    assert outcome["error"] is None, outcome["error"]
    for page in map(str, incident.INCIDENTS[name].pages):
        trigger = outcome["triggers"].get(page)
        assert trigger, f"{page} did not page; the drill said:\n{drill['log']}"
        event = trigger["event"]
        assert trigger["accepted"]
        assert pagerduty.problems(event) == []
        assert event["event_action"] == "trigger"
        assert event["payload"]["severity"] == _severity(event)  # the route's static severity
        runbook = event["links"][0]["href"]
        assert Path(runbook.removeprefix("file://").split("#")[0]).is_file(), runbook
        resolve = outcome["resolves"].get(page)
        assert resolve, f"{page} did not resolve after the repair; the drill said:\n{drill['log']}"
        assert resolve["dedup_key"] == trigger["dedup_key"]
        assert pagerduty.problems(resolve["event"]) == []
        assert resolve["at"] >= outcome["undone"]


def test_no_other_alert_paged_and_pagerduty_refused_nothing(drill: dict) -> None:
    pages = [(r["event"] or {}).get("payload", {}).get("summary", r["errors"]) for r in drill["unexpected"]]
    assert pages == []
    assert drill["exit"] == 0, drill["log"]
