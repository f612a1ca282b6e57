"""deploy/kibana/otel-kit.ndjson: generated from objects.py, and every reference resolves."""

from __future__ import annotations

import json

from tests.helpers import load_script
from tests.stack_fixtures import REPO

objects = load_script(REPO / "deploy/kibana/objects.py")


def test_the_committed_ndjson_is_what_objects_py_writes() -> None:
    assert objects.NDJSON.read_text() == objects.render(), "run: python deploy/kibana/objects.py"


def test_every_reference_names_an_object_in_the_file_and_ids_are_unique() -> None:
    saved = [json.loads(line) for line in objects.NDJSON.read_text().splitlines()]
    ids = {(o["type"], o["id"]) for o in saved}
    assert len(ids) == len(saved)
    for item in saved:
        for reference in item["references"]:
            assert (reference["type"], reference["id"]) in ids, (item["id"], reference)
    [dashboard] = [o for o in saved if o["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    names = {r["name"] for r in dashboard["references"]}
    assert {p["panelRefName"] for p in panels} == names
