"""A local PagerDuty Events API v2 endpoint: checks each event against PagerDuty's schema and keeps it.

PagerDuty's service cannot be reached from these machines, so the local stack points
Alertmanager here. Each event is checked against the schema PagerDuty publishes
(events-v2.openapiv3.json, from github.com/PagerDuty/api-schema) and against the limits its
documentation adds; it is answered as PagerDuty answers (202, or 400 with the errors), and
kept, valid or not, in memory and in a JSON-lines file. People read the pages with
`GET /events` (or the file); tests read them the same way.

    python deploy/pagerduty/local_events.py --port 9094 --store .stack/pagerduty/events.jsonl

`POST /heartbeat` takes the Watchdog's webhook (the dead man's switch); `GET /heartbeat`
says when the last one came.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from openapi_schema_validator import OAS30Validator

SCHEMA_FILE = Path(__file__).with_name("events-v2.openapiv3.json")
# Limits from PagerDuty's Events API v2 documentation that the OpenAPI file does not carry.
SUMMARY_MAX, DEDUP_KEY_MAX, ROUTING_KEY_LENGTH = 1024, 255, 32


def _validator() -> OAS30Validator:
    spec = json.loads(SCHEMA_FILE.read_text())
    body = spec["paths"]["/enqueue"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    # The body's $refs point into the spec's components: carry them along to resolve.
    schema = {**body, "components": spec["components"]}
    return OAS30Validator(schema, format_checker=OAS30Validator.FORMAT_CHECKER)


VALIDATOR = _validator()


def problems(event: Any) -> list[str]:
    """Why PagerDuty would refuse this event body; empty when it would accept it."""
    if not isinstance(event, dict):
        return ["the event is not a JSON object"]
    errors = [
        f"{'.'.join(map(str, error.absolute_path)) or 'event'}: {error.message}"
        for error in VALIDATOR.iter_errors(event)
    ]
    if len(str(event.get("routing_key", ""))) != ROUTING_KEY_LENGTH:
        errors.append(f"routing_key: an integration key has {ROUTING_KEY_LENGTH} characters")
    action = event.get("event_action")
    if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
        errors.append(f"dedup_key: required to {action}")
    if len(str(event.get("dedup_key", ""))) > DEDUP_KEY_MAX:
        errors.append(f"dedup_key: longer than {DEDUP_KEY_MAX} characters")
    payload = event.get("payload")
    if action == "trigger":
        if not isinstance(payload, dict):
            errors.append("payload: required to trigger")
        else:
            for field in ("summary", "source"):
                if not str(payload.get(field, "")).strip():
                    errors.append(f"payload.{field}: missing or blank")
            if len(str(payload.get("summary", ""))) > SUMMARY_MAX:
                errors.append(f"payload.summary: longer than {SUMMARY_MAX} characters")
    for index, link in enumerate(event.get("links") or []):
        href = link.get("href", "") if isinstance(link, dict) else ""
        if urlsplit(href).scheme not in ("http", "https", "file") or not urlsplit(href).path:
            errors.append(f"links.{index}.href: {href!r} is not an absolute URL")
    return errors


class Store:
    """Every event received, in order, also appended to a JSON-lines file that outlives a restart."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._path = path
        self.events: list[dict[str, Any]] = []
        self.heartbeats: list[str] = []
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                self.events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            record = {"seq": len(self.events) + 1, **record}
            self.events.append(record)
            if self._path is not None:
                with self._path.open("a") as file:
                    file.write(json.dumps(record) + "\n")
            return record


def make_app(store: Store) -> FastAPI:
    app = FastAPI(title="Local PagerDuty Events API v2", description=__doc__)

    @app.post("/v2/enqueue", status_code=202)
    async def enqueue(request: Request) -> JSONResponse:
        try:
            event = json.loads(await request.body())
        except ValueError as error:
            event, errors = None, [f"JSON parse error: {error}"]
        else:
            errors = problems(event)
        dedup_key = (event.get("dedup_key") if isinstance(event, dict) else None) or uuid.uuid4().hex
        store.add({
            "received_at": datetime.now(UTC).isoformat(),
            "accepted": not errors,
            "errors": errors,
            "dedup_key": dedup_key,
            "event": event,
        })  # fmt: skip
        if errors:
            body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            return JSONResponse(body, status_code=400)
        return JSONResponse({"status": "success", "message": "Event processed", "dedup_key": dedup_key}, 202)

    @app.get("/events")
    def events(after: int = 0) -> dict[str, Any]:
        """Events received after sequence number `after` (0: all of them), oldest first."""
        return {"events": [record for record in store.events if record["seq"] > after]}

    @app.post("/heartbeat")
    def heartbeat() -> dict[str, str]:
        store.heartbeats.append(datetime.now(UTC).isoformat())
        return {"status": "ok"}

    @app.get("/heartbeat")
    def last_heartbeat() -> dict[str, Any]:
        return {"count": len(store.heartbeats), "last": store.heartbeats[-1] if store.heartbeats else None}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(
    port: Annotated[int, typer.Option(help="Port to listen on (loopback only).")] = 9094,
    store: Annotated[Path | None, typer.Option(help="JSON-lines file to keep the events in.")] = None,
) -> None:
    uvicorn.run(make_app(Store(store)), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    typer.run(main)
