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
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Series:
    """One series' points in an extent: times (ms, ascending) and the points as the answer
    writes them (prom_json.point), side by side, so a run of them is two bisects and a slice."""

    labels: Labels
    times: list[int]
    points: list[str]

    def between(self, first: int, last: int) -> list[str]:
        """The encoded points from first to last (ms, inclusive)."""
        return self.points[bisect_left(self.times, first) : bisect_right(self.times, last)]

    def joined(self, later: Series) -> Series:
        """These points and `later`'s, `later` winning where both hold a time."""
        if not self.times or (later.times and later.times[0] > self.times[-1]):
            return Series(self.labels, self.times + later.times, self.points + later.points)
        both = dict(zip(self.times, self.points, strict=True))
        both.update(zip(later.times, later.points, strict=True))
        times = sorted(both)
        return Series(self.labels, times, [both[t] for t in times])


@dataclass
class Extent:
    """Every series' points at the grid points first..last (inclusive), in ms."""

    first: int
    last: int
    series: dict[str, Series] = field(default_factory=dict)  # by encoded metric (prom_json.metric)

    def size(self) -> int:
        """Its bytes in memory, near enough (tracemalloc: ~150 a point): the memory cache's bound."""
        return 200 + sum(300 + 2 * len(m) + 150 * len(s.times) for m, s in self.series.items())

    def to_json(self) -> dict:
        return {
            "first": self.first,
            "last": self.last,
            "series": [[m, list(map(list, s.labels)), s.times, s.points] for m, s in self.series.items()],
        }

    @classmethod
    def from_json(cls, data: dict) -> Extent:
        series = {
            m: Series(tuple((n, v) for n, v in labels), times, points)
            for m, labels, times, points in data["series"]
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
    """The extents with `new` added, runs that touch or overlap joined, sorted by time.
    Stored extents are never changed (a request may be reading them): joining makes new ones."""
    ordered = sorted([*extents, new], key=lambda e: e.first)
    joined: list[Extent] = []
    for extent in ordered:
        if joined and extent.first <= joined[-1].last + step:
            previous = joined[-1]
            series = dict(previous.series)
            for m, points in extent.series.items():
                series[m] = series[m].joined(points) if m in series else points
            joined[-1] = Extent(previous.first, max(previous.last, extent.last), series)
        else:
            joined.append(extent)
    return joined


def held_runs(extents: list[Extent], first: int, last: int) -> list[tuple[Extent, int, int]]:
    """The runs (extent, first, last) of first..last (ms, inclusive) that the extents hold."""
    runs = []
    for extent in extents:
        low, high = max(first, extent.first), min(last, extent.last)
        if low <= high:
            runs.append((extent, low, high))
    return runs


def gather(runs: Iterable[tuple[Extent, int, int]]) -> dict[str, tuple[Labels, list[str]]]:
    """Every series' encoded points in the runs, which must not overlap, in time order."""
    found: dict[str, tuple[Labels, list[str]]] = {}
    for extent, first, last in sorted(runs, key=lambda run: run[1]):
        for m, series in extent.series.items():
            inside = series.between(first, last)
            if inside:
                if m in found:
                    found[m][1].extend(inside)
                else:
                    found[m] = (series.labels, inside)
    return found


def label_order(labels: Labels) -> tuple[tuple[bytes, bytes], ...]:
    """Prometheus's order of series in a range-query answer (labels.Compare: byte-wise)."""
    return tuple((name.encode(), value.encode()) for name, value in labels)
