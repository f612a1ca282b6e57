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
from fastapi import FastAPI, Request, Response  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest  # noqa: E402

from query_service import prom_json, questions  # noqa: E402
from query_service.access import load_keys  # noqa: E402
from query_service.extents import Extent, Grid, Piece, label_order, merge, plan, points_between  # noqa: E402
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

ANSWERS = Counter("query_service_answers", "Range-query answers by how the cache served them.", ["cache"])
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
        self._slots = asyncio.Semaphore(settings.max_concurrent_queries)
        self._in_flight: dict[tuple, asyncio.Future] = {}
        self._canonical: dict[str, str | None] = {}

    async def close(self) -> None:
        await self._client.aclose()
        if isinstance(self.store, RedisStore):
            await self.store.close()

    async def prometheus(self, endpoint: str, method: str, params: list[tuple[str, str]]) -> httpx.Response:
        async with self._slots:
            with UPSTREAM.labels(endpoint).time():
                if method == "POST":
                    form = {"content-type": "application/x-www-form-urlencoded"}
                    return await self._client.post(
                        f"/api/v1/{endpoint}", content=urlencode(params), headers=form
                    )
                return await self._client.get(f"/api/v1/{endpoint}", params=params)

    async def pass_through(self, endpoint: str, request: Request) -> Response:
        params = await _params(request)
        upstream = await self.prometheus(endpoint, request.method, params)
        return _answer(upstream.content, upstream.status_code, "bypass", upstream.headers.get("content-type"))

    async def query_range(self, request: Request) -> Response:
        params = await _params(request)
        try:
            body, status = await self._cached_range(dict(params), params)
        except Refused as refused:
            return _refusal(refused.status, refused.error_type, str(refused))
        except _Bypass:
            ANSWERS.labels("bypass").inc()
            return await self.pass_through("query_range", request)
        ANSWERS.labels(status).inc()
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

    async def _cached_range(self, given: dict[str, str], params: list[tuple[str, str]]) -> tuple[bytes, str]:
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
        now = int(time.time() * 1000)
        settled = now - self.settings.freshness_ms
        oldest = now - self.settings.retention_ms + 2 * 3_600_000
        extents = await self.store.get(key)
        pieces = plan(grid, last, extents, settled, oldest)
        # The client's timeout, at most the service's own; one Prometheus would refuse goes to it.
        extra = []
        if "timeout" in given:
            asked = _step_ms(given["timeout"])
            if not asked or asked <= 0:
                raise _Bypass
            extra = [("timeout", prom_json.timestamp(min(asked, int(self.settings.timeout_s * 1000))))]
        fetched = await asyncio.gather(*(self._piece(key, query, piece, step, extra) for piece in pieces))
        # What the extents held when planned (settled points only: near the retention edge
        # Prometheus may have dropped some), then every piece just fetched.
        found = points_between(extents, max(start, oldest), min(last, settled))
        for extent in fetched:
            for m, (labels, points) in extent.series.items():
                found.setdefault(m, (labels, {}))[1].update(points)
        if len(found) > self.settings.max_series:
            raise Refused(
                422,
                "execution",
                f"the answer has {len(found)} series, over the service's maximum of "
                f"{self.settings.max_series} (OTEL_KIT_QUERY_MAX_SERIES); aggregate (sum by) or select fewer",
            )
        series = sorted(found.items(), key=lambda item: label_order(item[1][0]))
        body = prom_json.matrix((m, sorted(points.items())) for m, (_, points) in series)
        wanted = (last - start) // step + 1
        asked = sum((piece.last - piece.first) // step + 1 for piece in pieces)
        return body, "hit" if asked == 0 else "miss" if asked == wanted else "partial"

    async def _canonical_query(self, query: str) -> str | None:
        """Prometheus's own formatting of the query (one spelling per meaning), or None if it errs."""
        if query not in self._canonical:
            response = await self.prometheus("format_query", "GET", [("query", query)])
            self._canonical[query] = response.json()["data"] if response.status_code == 200 else None
            if len(self._canonical) > 10_000:
                self._canonical.pop(next(iter(self._canonical)))
        return self._canonical[query]

    async def _piece(self, key: str, query: str, piece: Piece, step: int, extra: list) -> Extent:
        """The points of one run from Prometheus; identical runs asked at once are fetched once."""
        flight = (key, piece.first, piece.last)
        if flight in self._in_flight:
            return await asyncio.shield(self._in_flight[flight])
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._in_flight[flight] = future
        try:
            extent = await self._fetch(query, piece, step, extra)
            if piece.storable:  # stored before the flight ends: a request planned after sees it
                await self.store.put(key, merge(await self.store.get(key), extent, step))
            future.set_result(extent)
            return extent
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._in_flight[flight]

    async def _fetch(self, query: str, piece: Piece, step: int, extra: list) -> Extent:
        params = [
            ("query", query),
            ("start", prom_json.timestamp(piece.first)),
            ("end", prom_json.timestamp(piece.last)),
            ("step", prom_json.timestamp(step)),
            *extra,
        ]
        response = await self.prometheus("query_range", "GET", params)
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
            labels = tuple(series["metric"].items())
            try:
                encoded = prom_json.metric(series["metric"])
            except prom_json.NotReproducible:
                raise _Bypass from None
            extent.series[encoded] = (labels, {prom_json.parse_timestamp(t): v for t, v in series["values"]})
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
    app.state.keys = load_keys(settings.api_keys_file)
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
    url = request.app.state.service.settings.prometheus_url
    message = f"Prometheus at {url} did not answer: {error!r} (OTEL_KIT_QUERY_PROMETHEUS_URL)"
    return _refusal(503, "unavailable", message)


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
async def purge(request: Request) -> dict:
    """Forget every cached extent."""
    return {"purged_keys": await request.app.state.service.store.purge()}


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
