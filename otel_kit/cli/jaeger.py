"""The few calls of Jaeger's HTTP query API (the one its UI uses) that forensics needs."""

from __future__ import annotations

import json
from typing import Any

import httpx


class JaegerUnreachable(Exception):
    """Jaeger's query API did not answer."""


class Jaeger:
    """The few calls of Jaeger's HTTP query API (the one its UI uses) that forensics needs."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout)

    def _get(self, path: str, **params: Any) -> Any:
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as error:
            raise JaegerUnreachable(f"Jaeger at {self.url} did not answer: {error}") from None
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return response.json()["data"] or []

    def services(self) -> list[str]:
        return self._get("/api/services")

    def traces_of_order(self, order_id: str, service: str, lookback: str) -> list[dict]:
        tags = json.dumps({"order.id": order_id})
        return self._get("/api/traces", service=service, tags=tags, lookback=lookback, limit=20)

    def service_at(self, host: str, port: int, lookback: str = "2d") -> str | None:
        """The service whose server spans last answered at host:port, learnt from its traces."""
        tags = json.dumps({"span.kind": "server", "server.address": host, "server.port": str(port)})
        latest: tuple[int, str] | None = None
        for service in self.services():
            for trace in self._get("/api/traces", service=service, tags=tags, lookback=lookback, limit=1):
                started = max(span["startTime"] for span in trace["spans"])
                if latest is None or started > latest[0]:
                    latest = (started, service)
        return latest[1] if latest else None

    def traces(self, service: str, operation: str, start_us: int, end_us: int, limit: int) -> list[dict]:
        return self._get(
            "/api/traces", service=service, operation=operation, start=start_us, end=end_us, limit=limit
        )
