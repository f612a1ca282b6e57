"""The query service's settings, from environment variables (an error names the variable and the value)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_DURATION = re.compile(r"^([0-9]+)(ms|s|m|h|d)$")
_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class SettingError(ValueError):
    """A setting's value is wrong; the message names the variable, the value and the form."""


def _duration_ms(name: str, default: str) -> int:
    value = os.environ.get(name, default).strip()
    match = _DURATION.match(value)
    if not match:
        raise SettingError(f"{name}={value!r}: expected a duration such as 500ms, 30s, 5m, 2h or 15d")
    return int(match[1]) * _MS[match[2]]


def _int(name: str, default: int, minimum: int = 1) -> int:
    value = os.environ.get(name, str(default)).strip()
    if not value.isdigit() or int(value) < minimum:
        raise SettingError(f"{name}={value!r}: expected a whole number of at least {minimum}")
    return int(value)


@dataclass(frozen=True)
class Settings:
    prometheus_url: str
    # Points newer than this are fetched each time, never stored: a scrape (10 s here) or a
    # rule evaluation (10 s) may still change them, and a remote write or a slow scrape later.
    freshness_ms: int
    # How long a fetched fresh tail answers other requests of its key (0ms: never shared).
    tail_share_ms: int
    # Prometheus's own retention: points near its edge are fetched, not stored (its blocks,
    # two hours long, are deleted whole).
    retention_ms: int
    cache_bytes: int
    max_concurrent_queries: int  # of Prometheus's 20 query slots, shared with rule evaluation
    redis_url: str | None  # the cache shared by replicas; in memory when unset
    label_proxy_url: str | None  # prom-label-proxy, for keys limited to some services
    api_keys_file: str | None  # query_service/access.py; every request served when unset
    max_range_ms: int  # the longest start..end a range query may span
    max_series: int  # the most series an answer may hold
    timeout_s: float

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            prometheus_url=os.environ.get("OTEL_KIT_QUERY_PROMETHEUS_URL", "http://127.0.0.1:9090").rstrip(
                "/"
            ),
            freshness_ms=_duration_ms("OTEL_KIT_QUERY_FRESHNESS", "1m"),
            tail_share_ms=_duration_ms("OTEL_KIT_QUERY_TAIL_SHARE", "5s"),
            retention_ms=_duration_ms("OTEL_KIT_QUERY_PROMETHEUS_RETENTION", "15d"),
            cache_bytes=_int("OTEL_KIT_QUERY_CACHE_BYTES", 256 * 2**20),
            max_concurrent_queries=_int("OTEL_KIT_QUERY_MAX_CONCURRENT", 4),
            redis_url=os.environ.get("OTEL_KIT_QUERY_REDIS_URL") or None,
            label_proxy_url=(os.environ.get("OTEL_KIT_QUERY_LABEL_PROXY_URL") or "").rstrip("/") or None,
            api_keys_file=os.environ.get("OTEL_KIT_QUERY_API_KEYS_FILE") or None,
            max_range_ms=_duration_ms("OTEL_KIT_QUERY_MAX_RANGE", "32d"),
            max_series=_int("OTEL_KIT_QUERY_MAX_SERIES", 10_000),
            timeout_s=_duration_ms("OTEL_KIT_QUERY_TIMEOUT", "2m") / 1000,
        )
