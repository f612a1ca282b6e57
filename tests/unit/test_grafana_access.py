"""deploy/grafana/access.py without a Grafana: the access file it applies, and the bodies it sends.

Grafana does not run on these machines, so the HTTP calls themselves are not exercised here
(the README says so); what they send is computed by the functions tested below.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import load_script
from tests.stack_fixtures import REPO

access = load_script(REPO / "deploy/grafana/access.py")
dashboards = load_script(REPO / "deploy/grafana/dashboards.py")


def test_the_committed_access_file_names_only_folders_the_dashboards_make() -> None:
    teams = access.load()
    folders = {board.folder for board in dashboards.BOARDS}
    assert {team.name for team in teams} >= {"on-call", "developers"}
    for team in teams:
        assert set(team.folders) <= folders, team
    on_call = next(team for team in teams if team.name == "on-call")
    assert set(on_call.folders.values()) == {access.PERMISSIONS["Edit"]}
    assert set(on_call.folders) == folders  # on call can act on every area


def test_a_folder_gets_exactly_its_teams() -> None:
    teams = access.load()
    ids = {team.name: index for index, team in enumerate(teams, start=10)}
    body = access.folder_permissions(teams, ids, "Databases")
    assert all(set(item) == {"teamId", "permission"} for item in body["items"])  # no role grants left
    granted = {item["teamId"]: item["permission"] for item in body["items"]}
    assert granted == {ids["on-call"]: 2, ids["developers"]: 1, ids["dba"]: 2}


def test_an_unknown_permission_is_refused_with_its_place_and_the_choices(tmp_path: Path) -> None:
    bad = tmp_path / "access.toml"
    bad.write_text('[teams.ops]\nfolders = { Services = "Write" }\n')
    with pytest.raises(access.AccessError, match=r"teams\.ops\.folders\.Services = 'Write'; expected one"):
        access.load(bad)


def test_a_dry_run_prints_the_changes_and_sends_none_but_reads(capsys: pytest.CaptureFixture) -> None:
    grafana = access.Grafana("http://127.0.0.1:9", ("admin", "x"), dry_run=True)
    assert grafana.call("POST", "/api/teams", json={"name": "on-call"}) == {}
    assert "POST /api/teams {'name': 'on-call'}" in capsys.readouterr().out
    with pytest.raises(access.AccessError, match="did not answer GET /api/folders"):
        grafana.call("GET", "/api/folders")
