"""The local PagerDuty Events API endpoint refuses what PagerDuty refuses, and keeps what it accepts."""

from __future__ import annotations

import copy

import pytest
from fastapi.testclient import TestClient

from tests.helpers import load_script
from tests.stack_fixtures import REPO

pagerduty = load_script(REPO / "deploy/pagerduty/local_events.py")

# An event as Alertmanager 0.25 sends it (trimmed details).
TRIGGER = {
    "routing_key": "0123456789abcdef0123456789abcdef",
    "dedup_key": "3a5b8c",
    "event_action": "trigger",
    "payload": {
        "summary": "PostgreSQL shop db: a session has waited 2m 0s for a lock",
        "source": "postgresql shop db",
        "severity": "warning",
        "class": "PostgresLongLockWait",
        "component": "shop",
        "group": "databases",
        "custom_details": {"firing": "Labels:\n - alertname = PostgresLongLockWait\n", "num_firing": "1"},
    },
    "client": "Alertmanager",
    "client_url": "http://127.0.0.1:9093/#/alerts",
    "links": [{"href": "https://git.example.com/otel-kit/docs/oncall/postgresql.md#x", "text": "Runbook"}],
}


def broken(path: str, value: object) -> dict:
    event = copy.deepcopy(TRIGGER)
    *parents, last = path.split(".")
    target = event
    for name in parents:
        target = target[name]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return event


def test_an_alertmanager_trigger_is_accepted_and_kept() -> None:
    store = pagerduty.Store(None)
    with TestClient(pagerduty.make_app(store)) as client:
        response = client.post("/v2/enqueue", json=TRIGGER)
        events = client.get("/events").json()["events"]
    assert response.status_code == 202
    assert response.json() == {"status": "success", "message": "Event processed", "dedup_key": "3a5b8c"}
    assert [(e["seq"], e["accepted"], e["event"]) for e in events] == [(1, True, TRIGGER)]


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        ("payload.severity", "", "payload.severity"),  # a templated severity that rendered empty
        ("payload.severity", "high", "payload.severity"),
        ("payload.summary", None, "payload: 'summary' is a required property"),
        ("payload.summary", "x" * 1025, "payload.summary: longer than 1024"),
        ("payload.source", " ", "payload.source: missing or blank"),
        ("event_action", "page", "event_action"),
        ("routing_key", "short", "routing_key"),
        ("routing_key", None, "'routing_key' is a required property"),
        ("links", [{"href": "docs/oncall/postgresql.md"}], "links.0.href"),
        ("links", [{"text": "no href"}], "links.0: 'href' is a required property"),
    ],
)
def test_what_pagerduty_refuses_is_a_400_naming_the_field(path: str, value: object, error: str) -> None:
    store = pagerduty.Store(None)
    with TestClient(pagerduty.make_app(store)) as client:
        response = client.post("/v2/enqueue", json=broken(path, value))
    assert response.status_code == 400
    assert response.json()["status"] == "invalid event"
    assert any(error in message for message in response.json()["errors"]), response.json()["errors"]
    assert store.events[-1]["accepted"] is False  # kept, so that a test sees the lost page


def test_a_resolve_needs_its_dedup_key_but_no_payload() -> None:
    resolve = {"routing_key": TRIGGER["routing_key"], "event_action": "resolve", "dedup_key": "3a5b8c"}
    assert pagerduty.problems(resolve) == []
    assert pagerduty.problems({**resolve, "dedup_key": ""}) == ["dedup_key: required to resolve"]


def test_the_store_outlives_a_restart(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    with TestClient(pagerduty.make_app(pagerduty.Store(path))) as client:
        client.post("/v2/enqueue", json=TRIGGER)
        client.post("/v2/enqueue", content=b"{not json")
    again = pagerduty.Store(path)
    assert [(e["seq"], e["accepted"]) for e in again.events] == [(1, True), (2, False)]
    assert "JSON parse error" in again.events[1]["errors"][0]
