"""The provisioned Grafana dashboards (deploy/grafana/dashboards/), checked as far as this machine
can without Grafana: each is what its source writes, fits the Grafana 11.6 schema of the
foundation SDK, gives every panel a unit, a description and the datasource variable, and,
after the example flow, every query of every panel returns data from the stack's Prometheus
for every value of the dashboard's variables, as Grafana would run it."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.e2e.conftest import SCANNER_LAG, Load, scanned
from tests.helpers import load_script
from tests.stack_fixtures import PROMETHEUS, REPO, eventually

SOURCE = REPO / "deploy/grafana/dashboards.py"
FILES = sorted((REPO / "deploy/grafana/dashboards").rglob("*.json"))
# Grafana's $__rate_interval is max(4 x scrape interval, the step + scrape interval): 1m here.
RATE_INTERVAL = "1m"
WINDOW = 3600  # the dashboards' default time range, now-1h


def _panels(path: Path) -> list[dict]:
    return [p for p in json.loads(path.read_text())["panels"] if p["type"] != "row"]


def test_the_committed_dashboards_are_what_the_source_writes() -> None:
    source = load_script(SOURCE)
    assert sorted(source.path_of(board) for board in source.BOARDS) == FILES
    for board in source.BOARDS:
        assert source.path_of(board).read_text() == source.render(board), (
            f"{source.path_of(board)} is stale: run python deploy/grafana/dashboards.py"
        )


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_each_dashboard_fits_the_grafana_schema(path: Path) -> None:
    """Read into the SDK's model and written back, nothing is lost: no field the schema lacks."""
    data = json.loads(path.read_text())
    again = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    assert again == data


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_panel_has_a_unit_a_description_and_the_datasource_variable(path: Path) -> None:
    variables = {v["name"]: v for v in json.loads(path.read_text())["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in _panels(path):
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel.get("description"), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def _variable_values(query: str) -> list[str]:
    """label_values(selector, label), as Grafana's Prometheus datasource resolves it."""
    found = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
    assert found, f"unsupported variable query {query!r}"
    selector, label = found.groups()
    end = time.time()
    params = {"match[]": selector, "start": end - WINDOW, "end": end}
    response = httpx.get(f"{PROMETHEUS}/api/v1/label/{label}/values", params=params, timeout=10)
    response.raise_for_status()
    return sorted(response.json()["data"])


def _substituted(expr: str, values: dict[str, str]) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name, value in values.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in expr, f"a variable is left in {expr}"
    return expr


def _range_has_data(expr: str) -> bool:
    end = time.time()
    response = httpx.get(
        f"{PROMETHEUS}/api/v1/query_range",
        params={"query": expr, "start": end - WINDOW, "end": end, "step": 15},
        timeout=30,
    )
    assert response.status_code == 200, f"{expr}: {response.text}"
    return any(series["values"] for series in response.json()["data"]["result"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_query_returns_data_for_every_value_of_the_variables(load: Load, path: Path) -> None:
    variables = [v for v in json.loads(path.read_text())["templating"]["list"] if v["type"] == "query"]
    choices = {}
    for variable in variables:
        values = eventually(lambda v=variable: _variable_values(v["query"]), timeout=60, interval=2)
        choices[variable["name"]] = values
    combinations = [dict(zip(choices, combo, strict=True)) for combo in itertools.product(*choices.values())]
    empty = []
    for values, panel in itertools.product(combinations, _panels(path)):
        for target in panel["targets"]:
            expr = _substituted(target["expr"], values)
            try:
                timeout = SCANNER_LAG if scanned(expr) else 30
                eventually(lambda e=expr: _range_has_data(e), timeout=timeout, interval=3)
            except AssertionError:
                empty.append(f"{panel['title']} {values}: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
