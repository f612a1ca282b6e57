"""Team access to the dashboards: apply deploy/grafana/access.toml over Grafana's HTTP API.

    python deploy/grafana/access.py --url http://127.0.0.1:3000            # apply (idempotent)
    python deploy/grafana/access.py --url http://127.0.0.1:3000 --dry-run  # print the requests

Grafana's file provisioning makes the folders (one per area, from dashboards/) but not
teams or folder permissions (that is Enterprise's access-control provisioning), so this
script does the rest: it creates each team, adds its members, and sets each folder's
permissions to exactly the teams that access.toml names (org admins keep full access). The admin
credentials come from GRAFANA_USER and GRAFANA_PASSWORD (or --password-file).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CONFIG = Path(__file__).resolve().parent / "access.toml"
PERMISSIONS = {"View": 1, "Edit": 2, "Admin": 4}  # Grafana's folder permission levels


class AccessError(Exception):
    """access.toml is wrong, or Grafana refused a request: the message names what and why."""


@dataclass(frozen=True)
class Team:
    name: str
    email: str
    members: tuple[str, ...]
    folders: dict[str, int]  # folder title -> permission level


def load(path: Path = CONFIG) -> list[Team]:
    """The teams of an access file, checked: every permission is one Grafana knows."""
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise AccessError(f"{path}: {error}") from None
    teams = []
    for name, team in config.get("teams", {}).items():
        folders = {}
        for folder, level in team.get("folders", {}).items():
            if level not in PERMISSIONS:
                raise AccessError(
                    f"{path}: teams.{name}.folders.{folder} = {level!r}; "
                    f"expected one of {', '.join(PERMISSIONS)}"
                )
            folders[folder] = PERMISSIONS[level]
        teams.append(Team(name, team.get("email", ""), tuple(team.get("members", ())), folders))
    return teams


def folder_permissions(teams: list[Team], team_ids: dict[str, int], folder: str) -> dict[str, Any]:
    """The body of POST /api/folders/{uid}/permissions: it replaces the folder's whole list, so
    the default Viewer and Editor role grants go and only these teams keep access (org
    admins always have it)."""
    items: list[dict[str, Any]] = []
    for team in teams:
        if folder in team.folders:
            items.append({"teamId": team_ids[team.name], "permission": team.folders[folder]})
    return {"items": items}


class Grafana:
    def __init__(self, url: str, auth: tuple[str, str], dry_run: bool) -> None:
        self.client = httpx.Client(base_url=url.rstrip("/"), auth=auth, timeout=10)
        self.dry_run = dry_run

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self.dry_run and method != "GET":
            print(method, path, kwargs.get("json", ""))
            return {}
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise AccessError(
                f"Grafana at {self.client.base_url} did not answer {method} {path}: {error}"
            ) from None
        if response.status_code >= 400:
            raise AccessError(f"{method} {path}: HTTP {response.status_code} {response.text.strip()}")
        return response.json()

    def wait_for_folders(self, titles: set[str], timeout: float) -> dict[str, str]:
        """Folder title -> uid, once provisioning has made every folder access.toml names."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = {
                    f["title"]: f["uid"] for f in self.call("GET", "/api/folders", params={"limit": 1000})
                }
            except AccessError:
                found = {}
            if titles <= found.keys() or time.monotonic() > deadline:
                missing = titles - found.keys()
                if missing:
                    raise AccessError(
                        f"no folder {', '.join(sorted(missing))} in Grafana after {timeout:.0f} s"
                    )
                return found
            time.sleep(1)

    def team_id(self, team: Team) -> int:
        found = self.call("GET", "/api/teams/search", params={"name": team.name})["teams"]
        if found:
            return found[0]["id"]
        created = self.call("POST", "/api/teams", json={"name": team.name, "email": team.email})
        return created.get("teamId", 0)

    def add_members(self, team: Team, team_id: int) -> None:
        present = (
            {m["login"] for m in self.call("GET", f"/api/teams/{team_id}/members")} if team_id else set()
        )
        for login in team.members:
            if login in present:
                continue
            user = self.call("GET", "/api/users/lookup", params={"loginOrEmail": login})
            self.call("POST", f"/api/teams/{team_id}/members", json={"userId": user["id"]})


def apply(grafana: Grafana, teams: list[Team], timeout: float = 60) -> None:
    titles = {folder for team in teams for folder in team.folders}
    folders = grafana.wait_for_folders(titles, timeout)
    team_ids = {}
    for team in teams:
        team_ids[team.name] = grafana.team_id(team)
        grafana.add_members(team, team_ids[team.name])
    for title in sorted(titles):
        grafana.call(
            "POST",
            f"/api/folders/{folders[title]}/permissions",
            json=folder_permissions(teams, team_ids, title),
        )
        names = {level: name for name, level in PERMISSIONS.items()}
        print(
            f"{title}: "
            + ", ".join(f"{t.name} {names[t.folders[title]]}" for t in teams if title in t.folders)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("GRAFANA_URL", "http://127.0.0.1:3000"))
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--password-file", type=Path, help="instead of GRAFANA_PASSWORD")
    parser.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    args = parser.parse_args()
    password = (
        args.password_file.read_text().strip() if args.password_file else os.environ.get("GRAFANA_PASSWORD")
    )
    if not password:
        print("set GRAFANA_PASSWORD (the Grafana admin's password) or pass --password-file", file=sys.stderr)
        return 2
    try:
        teams = load(args.config)
        apply(Grafana(args.url, (os.environ.get("GRAFANA_USER", "admin"), password), args.dry_run), teams)
    except AccessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
