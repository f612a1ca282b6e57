"""Every row of docs/metrics-map.md, after the example flow: its PromQL, run against the stack's
Prometheus, returns series with the labels and the values the row says it must show."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import SCANNER_LAG, Load, scanned
from tests.stack_fixtures import REPO, eventually, prom_query

DOC = REPO / "docs/metrics-map.md"


@dataclass(frozen=True)
class Row:
    number: str
    metric: str
    promql: str
    labels: tuple[str, ...]  # every row's series carry these (at least one series each)
    values: dict[str, frozenset[str]]  # and these labels show each of these values

    def __str__(self) -> str:
        return f"row {self.number} ({self.metric})"


def _cells(line: str) -> list[str]:
    """A GitHub table row's cells; `\\|` is a literal pipe (PromQL regex alternation)."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [cell.strip().replace("\\|", "|") for cell in cells]


def rows() -> list[Row]:
    found = []
    for line in DOC.read_text().splitlines():
        if not re.match(r"\| \d+ \|", line):
            continue
        number, metric, _source, promql, shows = _cells(line)
        labels, values = [], {}
        for part in shows.strip("`").split(";"):
            name, _, wanted = part.strip().partition("=")
            labels.append(name)
            if wanted:
                values[name] = frozenset(wanted.split(","))
        found.append(Row(number, metric, promql.strip("`"), tuple(labels), values))
    return found


def test_the_map_has_every_one_of_the_users_19_metrics() -> None:
    assert {int(row.number) for row in rows()} == set(range(1, 20))


def _shows(row: Row) -> str | None:
    """What the row's answer lacks, or None when it shows everything it must."""
    result = prom_query(row.promql)
    series = [s["metric"] for s in result]
    if not series:
        return "no series"
    missing = [label for label in row.labels if not any(s.get(label) for s in series)]
    if missing:
        return f"no series has {missing}"
    for label, wanted in row.values.items():
        absent = wanted - {s.get(label) for s in series}
        if absent:
            return f"{label} lacks {sorted(absent)}"
    if scanned(row.promql) and not any(float(s["value"][1]) > 0 for s in result):
        return "MinIO has not counted the bucket yet"
    return None


@pytest.mark.parametrize("row", rows(), ids=str)
def test_each_row_answers_with_the_label_asked_for(load: Load, row: Row) -> None:
    # Scrapes and span-metric flushes trail the flow by seconds; the bucket scanner by minutes.
    timeout = SCANNER_LAG if scanned(row.promql) else 60
    try:
        eventually(lambda: _shows(row) is None, timeout=timeout, interval=2)
    except AssertionError:
        pytest.fail(f"{row}: {_shows(row)}\n{row.promql}")
