"""The alert rules' runbooks (docs/oncall/): every alert Prometheus loaded has a severity, a team,
a summary and a runbook_url that leads to a section of its own with the parts a person on
call needs; every PromQL block of a runbook runs on the stack's Prometheus."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.stack_fixtures import PROMETHEUS, REPO

ONCALL = REPO / "docs/oncall"
PARTS = ("Meaning", "Impact", "Diagnosis", "Mitigation", "Escalation")
SEVERITIES = {"critical", "warning", "info"}  # info: the Watchdog, never a page


def _alerts() -> list[dict]:
    groups = httpx.get(f"{PROMETHEUS}/api/v1/rules", params={"type": "alert"}, timeout=10).json()
    return [rule for group in groups["data"]["groups"] for rule in group["rules"]]


def _section(path: Path, anchor: str) -> str | None:
    """The text under the `## ` heading whose GitHub anchor is `anchor`, up to the next one."""
    for section in re.split(r"^## ", path.read_text(), flags=re.MULTILINE)[1:]:
        heading = section.splitlines()[0]
        if re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") == anchor:
            return section
    return None


def test_every_alert_has_its_labels_summary_and_runbook(stack: None) -> None:
    alerts = _alerts()
    assert alerts, "Prometheus loaded no alert rule"
    for alert in alerts:
        name, labels, annotations = alert["name"], alert["labels"], alert["annotations"]
        assert labels.get("severity") in SEVERITIES, name
        assert labels.get("team"), name
        assert annotations.get("summary"), name
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert (REPO / path).is_file(), f"{name}: no runbook {path}"
        section = _section(REPO / path, anchor)
        assert section is not None, f"{name}: {path} has no section #{anchor}"
        missing = [part for part in PARTS if f"**{part}.**" not in section]
        assert not missing, f"{name}: its runbook lacks {missing}"


def _promql_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in sorted(ONCALL.glob("*.md")):
        for block in re.findall(r"```promql\n(.*?)```", path.read_text(), flags=re.DOTALL):
            blocks.append((path.name, block.strip()))
    return blocks


@pytest.mark.parametrize(("runbook", "promql"), _promql_blocks())
def test_every_promql_of_a_runbook_runs(stack: None, runbook: str, promql: str) -> None:
    response = httpx.get(f"{PROMETHEUS}/api/v1/query", params={"query": promql}, timeout=10)
    assert response.status_code == 200, f"{runbook}: {promql}: {response.text}"
    assert response.json()["status"] == "success"
