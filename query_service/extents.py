"""Range-query results cached by extent: what to ask Prometheus for, and how to put the answer together.

A key is (canonical query, step, start modulo step): every request under it evaluates on the
same grid of timestamps, and PromQL evaluates each step of a range query on its own, so the
points of a sub-range fetched alone equal the points of the whole range at those times. An
extent holds, for a closed run of grid points, every series' points there. A request takes
what the extents hold and asks Prometheus only for the rest, with the requested start and end
unchanged: nothing is moved to another grid.

Points newer than the freshness window (not yet settled: a scrape or a rule evaluation may
still add to them) and points near Prometheus's retention edge are fetched every time and
never stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]


@dataclass
class Extent:
    """Every series' points at the grid points first..last (inclusive), in ms."""

    first: int
    last: int
    # encoded metric -> (labels, {ms: the point as the answer writes it, prom_json.point})
    series: dict[str, tuple[Labels, dict[int, str]]] = field(default_factory=dict)

    def size(self) -> int:
        """Its bytes in memory, near enough (tracemalloc: ~150 a point): the memory cache's bound."""
        return 200 + sum(300 + 2 * len(m) + 150 * len(points) for m, (_, points) in self.series.items())

    def to_json(self) -> dict:
        return {
            "first": self.first,
            "last": self.last,
            "series": [
                [m, list(map(list, labels)), list(points.items())]
                for m, (labels, points) in self.series.items()
            ],
        }

    @classmethod
    def from_json(cls, data: dict) -> Extent:
        series = {
            m: (tuple((n, v) for n, v in labels), {int(ms): value for ms, value in points})
            for m, labels, points in data["series"]
        }
        return cls(data["first"], data["last"], series)


def dumps(extents: list[Extent]) -> bytes:
    return json.dumps([e.to_json() for e in extents], separators=(",", ":")).encode()


def loads(data: bytes) -> list[Extent]:
    return [Extent.from_json(item) for item in json.loads(data)]


@dataclass(frozen=True)
class Grid:
    """The timestamps a range query evaluates at: start, start + step, ... (ms)."""

    start: int
    step: int

    def last_point(self, end: int) -> int:
        return self.start + (end - self.start) // self.step * self.step

    def ceil(self, t: int) -> int:
        """The first grid point at or after t."""
        if t <= self.start:
            return self.start
        return self.start + -(-(t - self.start) // self.step) * self.step

    def floor(self, t: int) -> int:
        """The last grid point at or before t (may be before start)."""
        return self.start + (t - self.start) // self.step * self.step


@dataclass(frozen=True)
class Piece:
    """A closed run of grid points, and whether its points may be stored."""

    first: int
    last: int
    storable: bool


def plan(grid: Grid, last: int, extents: list[Extent], settled: int, oldest: int) -> list[Piece]:
    """The runs of the request's points (grid.start..last) to fetch from Prometheus, in order.

    settled: points after it are fresh (fetched, not stored); oldest: points before it are
    near the retention edge (fetched, not stored). Runs held by an extent are left out;
    neighbouring runs are fetched as one query.
    """
    pieces: list[Piece] = []
    t = grid.start
    while t <= last:
        storable = oldest <= t <= settled
        held = next((e for e in extents if e.first <= t <= e.last), None) if storable else None
        if held is not None:
            t = grid.floor(held.last) + grid.step
            continue
        # The run continues while the points stay unheld and keep the same storability.
        run_last = t
        while run_last + grid.step <= last:
            nxt = run_last + grid.step
            nxt_storable = oldest <= nxt <= settled
            if nxt_storable != storable:
                break
            if storable and any(e.first <= nxt <= e.last for e in extents):
                break
            run_last = nxt
        pieces.append(Piece(t, run_last, storable))
        t = run_last + grid.step
    return pieces


def fresh_run(grid: Grid, settled: int, now: int) -> Piece:
    """The fresh points of the grid's key (every grid with start's residue modulo step) up to
    now: the same run for each request of the key at about the same time, whatever its start,
    so that one fetch can answer them all."""
    first = settled + 1 + (grid.start - settled - 1) % grid.step
    return Piece(first, grid.floor(now), storable=False)


def merge(extents: list[Extent], new: Extent, step: int) -> list[Extent]:
    """The extents with `new` added, runs that touch or overlap joined, sorted by time."""
    ordered = sorted([*extents, new], key=lambda e: e.first)
    joined: list[Extent] = []
    for extent in ordered:
        if joined and extent.first <= joined[-1].last + step:
            previous = joined[-1]
            for m, (labels, points) in extent.series.items():
                previous.series.setdefault(m, (labels, {}))[1].update(points)
            previous.last = max(previous.last, extent.last)
        else:
            joined.append(
                Extent(
                    extent.first,
                    extent.last,
                    {m: (labels, dict(points)) for m, (labels, points) in extent.series.items()},
                )
            )
    return joined


def points_between(
    extents: list[Extent], grid: Grid, first: int, last: int
) -> dict[str, tuple[Labels, dict[int, str]]]:
    """Every series' points on the grid from first to last (ms, inclusive) that the extents
    hold, in time order. Looked up point by point: a request reads a part of what a key holds."""
    found: dict[str, tuple[Labels, dict[int, str]]] = {}
    for extent in extents:
        low, high = grid.ceil(max(first, extent.first)), min(last, extent.last)
        if low > high:
            continue
        times = range(low, high + 1, grid.step)
        for m, (labels, points) in extent.series.items():
            inside = {ms: points[ms] for ms in times if ms in points}
            if inside:
                found.setdefault(m, (labels, {}))[1].update(inside)
    return found


def label_order(labels: Labels) -> tuple[tuple[bytes, bytes], ...]:
    """Prometheus's order of series in a range-query answer (labels.Compare: byte-wise)."""
    return tuple((name.encode(), value.encode()) for name, value in labels)
