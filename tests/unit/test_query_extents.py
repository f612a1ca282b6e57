"""The query service's extent planning and Prometheus's JSON, on their own."""

from __future__ import annotations

import json

import pytest

from query_service import prom_json
from query_service.extents import (
    Extent,
    Grid,
    Piece,
    Series,
    dumps,
    fresh_run,
    gather,
    held_runs,
    loads,
    merge,
    plan,
)

STEP = 10_000


def extent(first: int, last: int, value: str = "1") -> Extent:
    times = list(range(first, last + 1, STEP))
    return Extent(first, last, {'{"a":"b"}': Series((("a", "b"),), times, [f"{t}:{value}" for t in times])})


def test_a_cold_request_is_one_piece_split_where_storability_changes() -> None:
    grid = Grid(0, STEP)
    assert plan(grid, 100_000, [], settled=100_000, oldest=0) == [Piece(0, 100_000, True)]
    # Points after `settled` are fresh; before `oldest`, near Prometheus's retention edge.
    assert plan(grid, 100_000, [], settled=75_000, oldest=20_000) == [
        Piece(0, 10_000, False),
        Piece(20_000, 70_000, True),
        Piece(80_000, 100_000, False),
    ]


def test_only_what_the_extents_lack_is_asked_and_fresh_points_always_are() -> None:
    grid = Grid(0, STEP)
    held = [extent(20_000, 40_000), extent(60_000, 70_000)]
    assert plan(grid, 100_000, held, settled=80_000, oldest=0) == [
        Piece(0, 10_000, True),
        Piece(50_000, 50_000, True),
        Piece(80_000, 80_000, True),
        Piece(90_000, 100_000, False),
    ]
    assert plan(grid, 40_000, held, settled=80_000, oldest=0) == [Piece(0, 10_000, True)]
    assert plan(Grid(20_000, STEP), 40_000, held, settled=80_000, oldest=0) == []


def test_merged_extents_join_when_they_touch_on_the_grid() -> None:
    joined = merge([extent(0, 20_000)], extent(30_000, 50_000, "2"), STEP)
    assert [(e.first, e.last) for e in joined] == [(0, 50_000)]
    apart = merge(joined, extent(70_000, 80_000), STEP)
    assert [(e.first, e.last) for e in apart] == [(0, 50_000), (70_000, 80_000)]
    found = gather(held_runs(apart, 10_000, 75_000))
    assert found['{"a":"b"}'][1] == [
        f"{t}:{v}" for t, v in [(10_000, 1), (20_000, 1), (30_000, 2), (40_000, 2), (50_000, 2), (70_000, 1)]
    ]
    assert loads(dumps(apart))[1].series == apart[1].series


def test_overlapping_extents_merge_with_the_newer_points_winning_and_the_old_unchanged() -> None:
    old = extent(0, 30_000)
    joined = merge([old], extent(20_000, 50_000, "2"), STEP)
    assert joined[0].series['{"a":"b"}'].times == list(range(0, 50_001, STEP))
    assert joined[0].series['{"a":"b"}'].points[2:4] == ["20000:2", "30000:2"]
    assert old.series['{"a":"b"}'].points[2:4] == ["20000:1", "30000:1"]  # a reader may hold it


def test_gathered_runs_come_out_in_time_order_and_leave_the_extents_unchanged() -> None:
    early, late = extent(0, 20_000), extent(30_000, 50_000, "2")
    found = gather([(late, 30_000, 40_000), (early, 10_000, 20_000)])
    assert found['{"a":"b"}'][1] == ["10000:1", "20000:1", "30000:2", "40000:2"]
    assert len(early.series['{"a":"b"}'].points) == 3


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (1_796_086_800_000, "1796086800"),
        (1_796_086_800_500, "1796086800.500"),
        (5, "0.005"),
        (-1_500, "-1.500"),
    ],
)
def test_timestamps_are_written_as_prometheus_writes_them(ms: int, text: str) -> None:
    assert prom_json.timestamp(ms) == text
    assert prom_json.parse_timestamp(text) == ms


def test_labels_are_escaped_as_go_does_and_unsure_ones_refused() -> None:
    assert prom_json.metric({"route": "/a<b>&c", "q": 'say "hi"\n', "u": "čas\u2028"}) == (
        '{"route":"/a\\u003cb\\u003e\\u0026c","q":"say \\"hi\\"\\n","u":"čas\\u2028"}'
    )
    with pytest.raises(prom_json.NotReproducible):
        prom_json.metric({"bell": "\x07"})


def test_a_matrix_is_compact_json_in_prometheus_s_key_order() -> None:
    body = prom_json.matrix([('{"a":"b"}', [prom_json.point(1000, "1"), prom_json.point(1500, "NaN")])])
    expected = b'{"status":"success","data":{"resultType":"matrix","result":'
    expected += b'[{"metric":{"a":"b"},"values":[[1,"1"],[1.500,"NaN"]]}]}}'
    assert body == expected
    assert json.loads(body)["data"]["result"][0]["values"][1] == [1.5, "NaN"]


@pytest.mark.parametrize("start", [0, 3_000, 95_000, 1_000_000])
@pytest.mark.parametrize("settled", [40_000, 41_000, 49_999])
def test_the_fresh_run_is_the_same_for_every_start_of_a_key(start: int, settled: int) -> None:
    now = 73_500
    run = fresh_run(Grid(start, STEP), settled, now)
    # On the key's grid (start's residue), the first point after settled, the last up to now.
    assert run.first % STEP == start % STEP
    assert run.last % STEP == start % STEP
    assert settled < run.first <= settled + STEP
    assert run.last <= now < run.last + STEP
    assert not run.storable
    assert run == fresh_run(Grid(start % STEP, STEP), settled, now)
