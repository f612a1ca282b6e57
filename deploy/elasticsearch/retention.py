"""Retention of the log data streams by rollover, for an Elasticsearch without ILM.

Elasticsearch's own lifecycle management (ILM, data stream lifecycle) is not in the
distribution the local stack runs, so this does its two steps through the rollover and
delete-index APIs: each logs-*.otel-* data stream gets a new write index once the current
one is a day old or 5 GB, and a backing index is deleted once its newest record is older
than the retention (known from the next index's creation time, since records are written to
the write index only). Where ILM exists, a policy does the same (docs/logs.md).

    python deploy/elasticsearch/retention.py --keep 7d            # once
    python deploy/elasticsearch/retention.py --keep 7d --every 1h # as a service
"""

from __future__ import annotations

import itertools
import re
import sys
import time
from datetime import timedelta
from typing import Annotated

import httpx
import typer

PATTERN = "logs-*.otel-*"
_DURATION = re.compile(r"^([0-9]+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str) -> timedelta:
    """'7d', '12h', '30m', '45s' as a timedelta; ValueError naming the value otherwise."""
    match = _DURATION.match(value.strip())
    if not match or int(match[1]) == 0:
        raise ValueError(f"{value!r} is not a duration: write a positive number and s, m, h or d (e.g. 7d)")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def apply(url: str, keep: timedelta, rollover_age: str = "1d", rollover_size: str = "5gb") -> list[str]:
    """Roll over and delete as described above; returns what it did, one line each."""
    done = []
    streams = (
        httpx.get(f"{url}/_resolve/index/{PATTERN}", timeout=30).raise_for_status().json()["data_streams"]
    )
    for stream in streams:
        rollover = httpx.post(
            f"{url}/{stream['name']}/_rollover",
            json={"conditions": {"max_age": rollover_age, "max_primary_shard_size": rollover_size}},
            timeout=60,
        ).raise_for_status()
        if rollover.json().get("rolled_over"):
            done.append(f"rolled over {stream['name']} to {rollover.json()['new_index']}")
    streams = (
        httpx.get(f"{url}/_resolve/index/{PATTERN}", timeout=30).raise_for_status().json()["data_streams"]
    )
    created = _creation_times(url)
    cutoff_ms = (time.time() - keep.total_seconds()) * 1000
    for stream in streams:
        backing = stream["backing_indices"]  # oldest first; the last one is the write index
        for index, successor in itertools.pairwise(backing):
            if created.get(successor, float("inf")) < cutoff_ms:
                httpx.delete(f"{url}/{index}", timeout=60).raise_for_status()
                done.append(f"deleted {index} (records older than {keep})")
    return done


def _creation_times(url: str) -> dict[str, float]:
    rows = httpx.get(
        f"{url}/_cat/indices/.ds-{PATTERN}", params={"format": "json", "h": "index,creation.date"}, timeout=30
    )
    return {row["index"]: float(row["creation.date"]) for row in rows.raise_for_status().json()}


def main(
    url: Annotated[str, typer.Option(envvar="ELASTICSEARCH_URL")] = "http://127.0.0.1:9200",
    keep: Annotated[str, typer.Option(help="How long records are kept, e.g. 7d.")] = "7d",
    rollover_age: Annotated[str, typer.Option(help="A write index older than this is rolled over.")] = "1d",
    every: Annotated[str | None, typer.Option(help="Run forever, once per this interval (e.g. 1h).")] = None,
) -> None:
    try:
        retention = parse_duration(keep)
        interval = parse_duration(every) if every else None
        parse_duration(rollover_age)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    while True:
        try:
            for line in apply(url.rstrip("/"), retention, rollover_age):
                print(line, flush=True)
        except httpx.HTTPError as error:
            print(f"retention: {url}: {error}; trying again next time", file=sys.stderr, flush=True)
            if interval is None:
                raise typer.Exit(1) from None
        if interval is None:
            return
        time.sleep(interval.total_seconds())


if __name__ == "__main__":
    typer.run(main)
