"""The query service: Prometheus's query API in front of Prometheus, range queries cached by extent.

    uvicorn query_service.app:app --port 9095

GET or POST /api/v1/query_range answers with the bytes Prometheus would send; what the cache
holds is not asked again (query_service/extents.py says how, and when it is not cached).
/api/v1/query, /series, /labels, /label/NAME/values, /metadata, /query_exemplars,
/format_query and /status/buildinfo pass through. Admin and write APIs are not served.
Every answer carries X-Cache: hit, partial, miss or bypass.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qsl, quote, urlencode

import otel_kit

otel_kit.init("query-service")

import httpx  # noqa: E402 - after init, so the calls to Prometheus are traced
from cachetools import TTLCache  # noqa: E402
from fastapi import FastAPI, Request, Response  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest  # noqa: E402

from query_service import prom_json, questions  # noqa: E402
from query_service.access import load_keys, services_of  # noqa: E402
from query_service.extents import (  # noqa: E402
    Extent,
    Grid,
    Piece,
    Series,
    fresh_run,
    gather,
    held_runs,
    label_order,
    merge,
    plan,
)
from query_service.settings import Settings  # noqa: E402
from query_service.store import MemoryStore, RedisStore  # noqa: E402

MAX_POINTS = 11_000  # Prometheus refuses more points per series
_RANGE_PARAMETERS = {"query", "start", "end", "step", "timeout"}
PASSED_THROUGH = (
    "query",
    "series",
    "labels",
    "metadata",
    "query_exemplars",
    "format_query",
    "status/buildinfo",
    "alerts",
    "rules",
)
# What prom-label-proxy serves, with the team's services enforced; for a key limited to some
# services the rest either holds no series (format_query, buildinfo: to Prometheus) or is refused.
_ENFORCED = ("query", "query_range", "series", "labels", "query_exemplars", "rules", "alerts")
_NO_SERIES = ("format_query", "status/buildinfo")
SERVICES_HEADER = "X-Otel-Kit-Services"
# A query whose points can depend on data after their own time: never cached.
_UNCACHEABLE = re.compile(r"@\s*(start|end)\s*\(|@\s*-?[0-9]|offset\s+-")
# Prometheus's duration: each unit once, in this order (model.ParseDuration).
_DURATION = re.compile(r"^(?:(?P<y>[0-9]+)y)?(?:(?P<w>[0-9]+)w)?(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?"
                       r"(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?(?:(?P<ms>[0-9]+)ms)?$")  # fmt: skip
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})$"
)
_UNIT_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}

ANSWERS = Histogram(
    "query_service_answer_duration_seconds",
    "Range-query answers by how the cache served them, and how long each took in the service.",
    ["cache"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
)
UPSTREAM = Histogram(
    "query_service_prometheus_query_duration_seconds", "Queries sent to Prometheus.", ["endpoint"]
)
UPSTREAM_POINTS = Counter("query_service_prometheus_points", "Points Prometheus returned to the service.")


class _Bypass(Exception):
    """Answer this request by passing it through unchanged (Prometheus gives its own answer or error)."""


class Refused(Exception):
    """A request over a limit: answered as Prometheus answers bad input, naming the limit."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type = status, error_type


def _refusal(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"status": "error", "errorType": error_type, "error": message}
    return JSONResponse(body, status, headers={"X-Cache": "bypass", **(headers or {})})


class QueryService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = (
            RedisStore(settings.redis_url, settings.retention_ms)
            if settings.redis_url
            else MemoryStore(settings.cache_bytes)
        )
        self._client = httpx.AsyncClient(base_url=settings.prometheus_url, timeout=settings.timeout_s)
        self._proxy = (
            httpx.AsyncClient(base_url=settings.label_proxy_url, timeout=settings.timeout_s)
            if settings.label_proxy_url
            else None
        )
        self._slots = asyncio.Semaphore(settings.max_concurrent_queries)
        self._in_flight: dict[tuple, asyncio.Future] = {}
        # key -> the fresh tail last fetched for it, while it may answer other requests.
        self._tails: TTLCache[str, Extent] = TTLCache(4096, max(settings.tail_share_ms, 1) / 1000)
        self._canonical: dict[str, str | None] = {}

    async def close(self) -> None:
        await self._client.aclose()
        if self._proxy is not None:
            await self._proxy.aclose()
        if isinstance(self.store, RedisStore):
            await self.store.close()

    async def purge(self) -> int:
        """Forget every extent and shared tail; the number of keys the store held."""
        self._tails.clear()
        return await self.store.purge()

    async def prometheus(
        self,
        endpoint: str,
        method: str,
        params: list[tuple[str, str]],
        services: tuple[str, ...] | None = None,
    ) -> httpx.Response:
        """Prometheus's answer; with `services`, through prom-label-proxy, which limits every
        selector of the request to those service_name values."""
        client, headers = self._client, []
        if services is not None and not endpoint.startswith(_NO_SERIES):
            if self._proxy is None or not endpoint.startswith((*_ENFORCED, "label/")):
                message = f"/api/v1/{endpoint} is not served to a key limited to services"
                raise Refused(403, "forbidden", message)
            client, headers = self._proxy, [(SERVICES_HEADER, service) for service in services]
        url = f"/api/v1/{endpoint}"
        # label/NAME/values counts as one endpoint: the label name is the client's input.
        async with self._slots:
            with UPSTREAM.labels("label" if endpoint.startswith("label/") else endpoint).time():
                if method == "POST":
                    headers.append(("content-type", "application/x-www-form-urlencoded"))
                    return await client.post(url, content=urlencode(params), headers=headers)
                return await client.get(url, params=params, headers=headers)

    async def pass_through(self, endpoint: str, request: Request) -> Response:
        params = await _params(request)
        try:
            upstream = await self.prometheus(endpoint, request.method, params, services_of(request))
        except Refused as refused:
            return _refusal(refused.status, refused.error_type, str(refused))
        return _answer(upstream.content, upstream.status_code, "bypass", upstream.headers.get("content-type"))

    async def query_range(self, request: Request) -> Response:
        began = time.perf_counter()
        params = await _params(request)
        try:
            body, status = await self._cached_range(dict(params), params, services_of(request))
        except Refused as refused:
            return _refusal(refused.status, refused.error_type, str(refused))
        except _Bypass:
            answer = await self.pass_through("query_range", request)
            ANSWERS.labels("bypass").observe(time.perf_counter() - began)
            return answer
        ANSWERS.labels(status).observe(time.perf_counter() - began)
        return _answer(body, 200, status, "application/json")

    def _check_range(self, start: int, end: int) -> None:
        if end - start > self.settings.max_range_ms:
            days = (end - start) / 86_400_000
            raise Refused(
                400,
                "bad_data",
                f'invalid parameter "end": the range from start to end is {days:.1f} days, over the '
                f"service's maximum of {self.settings.max_range_ms / 86_400_000:g} days "
                "(OTEL_KIT_QUERY_MAX_RANGE); ask for a shorter range",
            )

    async def _cached_range(
        self, given: dict[str, str], params: list[tuple[str, str]], services: tuple[str, ...] | None
    ) -> tuple[bytes, str]:
        query = given.get("query")
        names = [name for name, _ in params]
        if query is None or len(names) != len(set(names)) or not set(names) <= _RANGE_PARAMETERS:
            raise _Bypass  # a parameter given twice, or one the cache does not know
        start, end, step = (
            _time_ms(given.get("start")),
            _time_ms(given.get("end")),
            _step_ms(given.get("step")),
        )
        if start is None or end is None or step is None or step <= 0 or end < start:
            raise _Bypass
        if (end - start) // step + 1 > MAX_POINTS:
            raise _Bypass
        self._check_range(start, end)  # a valid request, over the service's own limits
        canonical = await self._canonical_query(query)
        if canonical is None or _UNCACHEABLE.search(canonical):
            raise _Bypass
        grid = Grid(start, step)
        last = grid.last_point(end)
        key = f"{canonical}\x00{step}\x00{start % step}"
        if services is not None:  # what a team's key sees is its own
            key = f"{','.join(services)}\x00{key}"
        now = int(time.time() * 1000)
        settled = now - self.settings.freshness_ms
        oldest = now - self.settings.retention_ms + 2 * 3_600_000
        extents = await self.store.get(key)
        pieces = plan(grid, last, extents, settled, oldest)
        # The client's timeout, at most the service's own; one Prometheus would refuse goes to it.
        extra = []
        if "timeout" in given:
            timeout = _step_ms(given["timeout"])
            if not timeout or timeout <= 0:
                raise _Bypass
            extra = [("timeout", prom_json.timestamp(min(timeout, int(self.settings.timeout_s * 1000))))]
        fresh = fresh_run(grid, settled, now)
        answers = await asyncio.gather(
            *(
                self._tail(
                    key, query, Piece(fresh.first, max(fresh.last, piece.last), False), step, extra, services
                )
                if piece.first > settled
                else self._piece(key, query, piece, step, extra, services)
                for piece in pieces
            )
        )
        # What the extents held when planned (settled points only: near the retention edge
        # Prometheus may have dropped some), then each piece's points, fetched or shared.
        runs = held_runs(extents, max(start, oldest), min(last, settled))
        runs += [
            (extent, piece.first, piece.last) for piece, (extent, _) in zip(pieces, answers, strict=True)
        ]
        found = gather(runs)
        asked = sum(
            fetched * ((piece.last - piece.first) // step + 1)
            for piece, (_, fetched) in zip(pieces, answers, strict=True)
        )
        if len(found) > self.settings.max_series:
            raise Refused(
                422,
                "execution",
                f"the answer has {len(found)} series, over the service's maximum of "
                f"{self.settings.max_series} (OTEL_KIT_QUERY_MAX_SERIES); aggregate (sum by) or select fewer",
            )
        series = sorted(found.items(), key=lambda item: label_order(item[1][0]))
        body = prom_json.matrix((m, points) for m, (_, points) in series)
        wanted = (last - start) // step + 1
        return body, "hit" if asked == 0 else "miss" if asked == wanted else "partial"

    async def _canonical_query(self, query: str) -> str | None:
        """Prometheus's own formatting of the query (one spelling per meaning), or None if it errs."""
        if query not in self._canonical:
            response = await self.prometheus("format_query", "GET", [("query", query)])
            self._canonical[query] = response.json()["data"] if response.status_code == 200 else None
            if len(self._canonical) > 10_000:
                self._canonical.pop(next(iter(self._canonical)))
        return self._canonical[query]

    async def _tail(
        self, key: str, query: str, tail: Piece, step: int, extra: list, services: tuple[str, ...] | None
    ) -> tuple[Extent, bool]:
        """The fresh points of a key: fetched for one request, shared with the others of the next
        OTEL_KIT_QUERY_TAIL_SHARE, so N dashboards refreshing the same panel cost one query."""
        shared = self._tails.get(key)
        if shared is not None and shared.first <= tail.first and tail.last <= shared.last:
            return shared, False
        extent, fetched = await self._piece(key, query, tail, step, extra, services)
        if self.settings.tail_share_ms:
            self._tails[key] = extent
        return extent, fetched

    async def _piece(
        self, key: str, query: str, piece: Piece, step: int, extra: list, services: tuple[str, ...] | None
    ) -> tuple[Extent, bool]:
        """The points of one run from Prometheus, and whether this request asked for them:
        identical runs asked at once are fetched once."""
        flight = (key, piece.first, piece.last)
        if flight in self._in_flight:
            return await asyncio.shield(self._in_flight[flight]), False
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._in_flight[flight] = future
        try:
            extent = await self._fetch(query, piece, step, extra, services)
            if piece.storable:  # stored before the flight ends: a request planned after sees it
                await self.store.put(key, merge(await self.store.get(key), extent, step))
            future.set_result(extent)
            return extent, True
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._in_flight[flight]

    async def _fetch(
        self, query: str, piece: Piece, step: int, extra: list, services: tuple[str, ...] | None
    ) -> Extent:
        params = [
            ("query", query),
            ("start", prom_json.timestamp(piece.first)),
            ("end", prom_json.timestamp(piece.last)),
            ("step", prom_json.timestamp(step)),
            *extra,
        ]
        response = await self.prometheus("query_range", "GET", params, services)
        if response.status_code != 200:
            raise _Bypass
        answer = json.loads(response.content, parse_float=str, parse_int=str)
        data = answer.get("data", {})
        if answer.get("status") != "success" or "warnings" in answer or data.get("resultType") != "matrix":
            raise _Bypass
        extent = Extent(piece.first, piece.last)
        for series in data["result"]:
            if "values" not in series or "histograms" in series:
                raise _Bypass  # native histograms: not written by prom_json
            try:
                encoded = prom_json.metric(series["metric"])
            except prom_json.NotReproducible:
                raise _Bypass from None
            # Each point encoded once, here: a hit only joins them. Prometheus sends them in time order.
            times = [prom_json.parse_timestamp(t) for t, _ in series["values"]]
            points = [prom_json.point(ms, v) for ms, (_, v) in zip(times, series["values"], strict=True)]
            extent.series[encoded] = Series(tuple(series["metric"].items()), times, points)
            UPSTREAM_POINTS.inc(len(series["values"]))
        return extent


async def _params(request: Request) -> list[tuple[str, str]]:
    params = list(request.query_params.multi_items())
    if request.method == "POST":  # Prometheus clients post application/x-www-form-urlencoded
        params += parse_qsl((await request.body()).decode(), keep_blank_values=True)
    return params


def _answer(body: bytes, status: int, cache: str, content_type: str | None) -> Response:
    return Response(body, status, media_type=content_type or "application/json", headers={"X-Cache": cache})


def _time_ms(value: str | None) -> int | None:
    """Prometheus's parseTime: unix seconds (to the millisecond) or RFC 3339; None for anything
    else, which then goes to Prometheus as it is, to be answered or refused by Prometheus."""
    if value is None:
        return None
    seconds = _decimal(value)
    if seconds is not None:
        return int((seconds * 1000).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    if not _RFC3339.match(value):
        return None
    moment = datetime.fromisoformat(value)
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def _decimal(value: str) -> Decimal | None:
    """A plain decimal number of seconds (what Go's ParseFloat and Python agree on), else None."""
    if not _PLAIN_NUMBER.match(value):
        return None
    number = Decimal(value)
    return number if number.is_zero() or number.adjusted() < 12 else None


def _step_ms(value: str | None) -> int | None:
    """A step as seconds (to the millisecond) or a Prometheus duration (1m30s, units in order)."""
    if value is None:
        return None
    seconds = _decimal(value)
    if seconds is not None:
        return int(seconds * 1000)
    match = _DURATION.match(value)
    if not value or not match:
        return None
    return sum(int(number) * _UNIT_MS[unit] for unit, number in match.groupdict().items() if number)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    settings = Settings.from_env()
    app.state.keys = load_keys(settings.api_keys_file, settings.label_proxy_url)
    service = QueryService(settings)
    app.state.service = service
    yield
    await service.close()


app = FastAPI(
    title="otel-kit query service",
    description="Prometheus's query API with range queries cached by extent (docs/query-service.md).",
    lifespan=_lifespan,
)


app.include_router(questions.router)


@app.exception_handler(httpx.TransportError)
async def _prometheus_unreachable(request: Request, error: httpx.TransportError) -> JSONResponse:
    settings = request.app.state.service.settings
    what, url, setting = "Prometheus", settings.prometheus_url, "OTEL_KIT_QUERY_PROMETHEUS_URL"
    if settings.label_proxy_url and str(error.request.url).startswith(settings.label_proxy_url):
        what, url, setting = "prom-label-proxy", settings.label_proxy_url, "OTEL_KIT_QUERY_LABEL_PROXY_URL"
    return _refusal(503, "unavailable", f"{what} at {url} did not answer: {error!r} ({setting})")


@app.middleware("http")
async def _authorized(request: Request, call_next):
    """API keys and their rate limits (query_service/access.py), when a keys file is set."""
    keys = request.app.state.keys
    if keys is None or not request.url.path.startswith(("/api/", "/v1/", "/admin/")):
        return await call_next(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    key = keys.get(token) if scheme.lower() == "bearer" else None
    if key is None:
        message = (
            "no known API key: send Authorization: Bearer <token> (OTEL_KIT_QUERY_API_KEYS_FILE lists them)"
        )
        return _refusal(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})
    wait = key.take()
    if wait:
        message = (
            f"key {key.name!r} is over its {key.requests_per_minute} requests a minute; retry in {wait:.1f} s"
        )
        return _refusal(429, "too_many_requests", message, {"Retry-After": str(max(1, round(wait)))})
    request.state.services = key.services
    return await call_next(request)


def _parameter(name: str, description: str, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": {"type": "string"},
        "description": description,
    }


_RANGE_DOC = {
    "parameters": [
        _parameter("query", "PromQL.", required=True),
        _parameter("start", "Unix seconds or RFC 3339.", required=True),
        _parameter("end", "Unix seconds or RFC 3339.", required=True),
        _parameter("step", "Seconds or a duration (15s, 1m).", required=True),
        _parameter("timeout", "At most the service's OTEL_KIT_QUERY_TIMEOUT."),
    ]
}


@app.api_route("/api/v1/query_range", methods=["GET", "POST"], openapi_extra=_RANGE_DOC)
async def query_range(request: Request) -> Response:
    """Prometheus's range query, answered from cached extents where it can (X-Cache says how)."""
    return await request.app.state.service.query_range(request)


for _endpoint in PASSED_THROUGH:

    def _route(endpoint: str):
        async def passed(request: Request) -> Response:
            return await request.app.state.service.pass_through(endpoint, request)

        return passed

    app.add_api_route(
        f"/api/v1/{_endpoint}", _route(_endpoint), methods=["GET", "POST"], include_in_schema=True
    )


@app.api_route("/api/v1/label/{name}/values", methods=["GET"])
async def label_values(name: str, request: Request) -> Response:
    return await request.app.state.service.pass_through(f"label/{quote(name, safe='')}/values", request)


@app.post("/admin/purge")
async def purge(request: Request) -> Response:
    """Forget every cached extent (not for a key limited to services: the cache is everyone's)."""
    if services_of(request) is not None:
        return _refusal(403, "forbidden", "a key limited to services cannot purge the shared cache")
    return JSONResponse({"purged_keys": await request.app.state.service.purge()})


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
