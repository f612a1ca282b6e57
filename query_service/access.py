"""API keys, each with a team and a rate limit, from a TOML file (OTEL_KIT_QUERY_API_KEYS_FILE).

    [keys.grafana]
    token = "a-long-random-string"
    team = "platform"
    requests_per_minute = 600

    [keys.shop-team]
    token = "another-long-random-string"
    team = "shop"
    services = ["shop", "crm"]   # this key sees only series with these service_name values

With no file every request is served (a service on loopback, as in the local stack). With one,
every /api and /v1 request needs `Authorization: Bearer <token>`: 401 without a known token,
429 with Retry-After past the key's rate (a token bucket holding a minute's worth). A key with
`services` reads Prometheus through prom-label-proxy (OTEL_KIT_QUERY_LABEL_PROXY_URL), which
adds `service_name=~"shop|crm"` to every selector of its queries.
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request

from query_service.settings import SettingError


@dataclass
class Key:
    name: str
    team: str
    requests_per_minute: int
    services: tuple[str, ...] | None = None  # None: every series
    _tokens: float = field(default=0.0, repr=False)
    _at: float = field(default_factory=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.requests_per_minute)

    def take(self) -> float:
        """0 if a request may go now, else the seconds until one may."""
        now = time.monotonic()
        rate = self.requests_per_minute / 60
        self._tokens = min(float(self.requests_per_minute), self._tokens + (now - self._at) * rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / rate


def load_keys(path: str | None, label_proxy_url: str | None = None) -> dict[str, Key] | None:
    """Token -> key, or None when no file is set (no authentication)."""
    if not path:
        return None
    setting = "OTEL_KIT_QUERY_API_KEYS_FILE"
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingError(f"{setting}={path!r}: cannot be read as TOML: {error}") from None
    keys: dict[str, Key] = {}
    for name, entry in data.get("keys", {}).items():
        token, team, rate = entry.get("token"), entry.get("team"), entry.get("requests_per_minute", 600)
        if not isinstance(token, str) or len(token) < 16:
            raise SettingError(f"{setting}: key {name!r} needs a token of at least 16 characters")
        if not isinstance(team, str) or not team:
            raise SettingError(f"{setting}: key {name!r} needs a team")
        if not isinstance(rate, int) or rate < 1:
            raise SettingError(
                f"{setting}: key {name!r}: requests_per_minute={rate!r}: expected a whole number >= 1"
            )
        services = entry.get("services")
        if services is not None:
            if (
                not isinstance(services, list)
                or not services
                or not all(isinstance(service, str) and service for service in services)
            ):
                raise SettingError(
                    f"{setting}: key {name!r}: services={services!r}: expected a list of service names"
                )
            if not label_proxy_url:
                raise SettingError(
                    f"{setting}: key {name!r} is limited to services {services}, which needs "
                    "OTEL_KIT_QUERY_LABEL_PROXY_URL (a prom-label-proxy with -label=service_name "
                    "-header-name=X-Otel-Kit-Services in front of Prometheus)"
                )
            services = tuple(sorted(set(services)))
        if token in keys:
            raise SettingError(f"{setting}: keys {keys[token].name!r} and {name!r} have the same token")
        keys[token] = Key(name, team, rate, services)
    if not keys:
        raise SettingError(f"{setting}={path!r}: no [keys.NAME] table in it")
    return keys


def services_of(request: Request) -> tuple[str, ...] | None:
    """The services the request's key is limited to, or None: every series."""
    return getattr(request.state, "services", None)
