"""Where did an order stop? Reads an order's spans from Jaeger's query API and gives a verdict.

Kept apart from the CLI so that the rules can be read, and tested, on their own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx


class JaegerUnreachable(Exception):
    """Jaeger's query API did not answer."""


@dataclass(frozen=True)
class Step:
    """One span of the order's path, flattened for people and scripts."""

    start_ms: float  # from the order's first span
    service: str
    operation: str
    duration_ms: float
    error: bool
    note: str  # the error, the HTTP status, the dead-letter reason: what support needs
    span_id: str
    parent_id: str | None
    kind: str


@dataclass
class Verdict:
    order_id: str
    outcome: str  # completed | failed | stuck | unknown
    service: str | None = None
    step: str | None = None
    reason: str | None = None
    trace_ids: list[str] = field(default_factory=list)
    timeline: list[Step] = field(default_factory=list)

    def summary(self) -> str:
        if self.outcome == "unknown":
            return f"{self.order_id}: no trace in Jaeger"
        if self.outcome == "completed":
            extra = f" ({self.reason})" if self.reason else ""
            return f"{self.order_id}: completed{extra}"
        where = "stuck after" if self.outcome == "stuck" else "failed at"
        return f"{self.order_id}: {where} {self.service}: {self.step} - {self.reason}"

    def slowest_leaf(self) -> Step | None:
        """The slowest span that has no child: where the time really went."""
        parents = {step.parent_id for step in self.timeline}
        leaves = [step for step in self.timeline if step.span_id not in parents]
        return max(leaves, key=lambda step: step.duration_ms, default=None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


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

    def traces(self, service: str, operation: str, start_us: int, end_us: int, limit: int) -> list[dict]:
        return self._get(
            "/api/traces", service=service, operation=operation, start=start_us, end=end_us, limit=limit
        )


def _tags(span: dict) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def _note(span: dict, tags: dict[str, Any]) -> str:
    parts = []
    for log in span.get("logs", []):
        fields = {f["key"]: f["value"] for f in log.get("fields", [])}
        if fields.get("event") == "exception":
            parts.append(
                f"{fields.get('exception.type', 'exception')}: {fields.get('exception.message', '')}"
            )
    if tags.get("otel.status_description") and not parts:
        parts.append(str(tags["otel.status_description"]))
    if "http.response.status_code" in tags:
        parts.append(f"HTTP {tags['http.response.status_code']}")
    if "messaging.rabbitmq.dead_letter.reason" in tags:
        parts.append(
            f"dead letter: {tags['messaging.rabbitmq.dead_letter.reason']} from queue "
            f"{tags.get('messaging.rabbitmq.dead_letter.queue', '?')}"
        )
    if tags.get("url.full") and (tags.get("error") or tags.get("otel.status_code") == "ERROR"):
        parts.append(str(tags["url.full"]))
    return "; ".join(p.strip() for p in parts if p)


def timeline(traces: list[dict]) -> list[Step]:
    """Every span of the order's traces in start order, times relative to the first."""
    spans = []
    for trace in traces:
        services = {key: process["serviceName"] for key, process in trace["processes"].items()}
        for span in trace["spans"]:
            spans.append((span, services[span["processID"]]))
    if not spans:
        return []
    origin = min(span["startTime"] for span, _ in spans)
    steps = []
    for span, service in sorted(spans, key=lambda pair: pair[0]["startTime"]):
        tags = _tags(span)
        parents = [ref["spanID"] for ref in span.get("references", []) if ref.get("refType") == "CHILD_OF"]
        steps.append(
            Step(
                start_ms=round((span["startTime"] - origin) / 1000, 1),
                service=service,
                operation=span["operationName"],
                duration_ms=round(span["duration"] / 1000, 1),
                error=bool(tags.get("error")) or tags.get("otel.status_code") == "ERROR",
                note=_note(span, tags),
                span_id=span["spanID"],
                parent_id=parents[0] if parents else None,
                kind=str(tags.get("span.kind", "")),
            )
        )
    return steps


def verdict(order_id: str, traces: list[dict], done: tuple[str, str]) -> Verdict:
    """completed if the order reached the terminal step `done` (service, operation); else the cause.

    Failed: the deepest error (an error span without an erroring child: the CRM's 500, not
    the MES client span that saw it) and, if the message was dead-lettered, where it went;
    else the consumer whose message was dead-lettered.
    Stuck: nothing failed, the path just ends; a message published and never consumed is
    named as such.
    """
    steps = timeline(traces)
    result = Verdict(order_id, "unknown", trace_ids=sorted({t["traceID"] for t in traces}), timeline=steps)
    if not steps:
        return result
    children: dict[str, list[Step]] = {}
    for step in steps:
        if step.parent_id:
            children.setdefault(step.parent_id, []).append(step)
    errors = [s for s in steps if s.error]
    if any((s.service, s.operation) == done and not s.error for s in steps):
        result.outcome = "completed"
        retried = [s for s in errors if s.kind == "consumer"]
        if retried:
            result.reason = f"after {len(retried)} failed attempt(s): {retried[0].service}: {retried[0].note}"
        return result
    root_causes = [e for e in errors if not any(c.error for c in children.get(e.span_id, []))]
    dead = [s for s in steps if "dead letter" in s.note]
    if root_causes:
        cause = root_causes[-1]
        result.outcome, result.service, result.step = "failed", cause.service, cause.operation
        result.reason = cause.note or "error"
        if dead:  # where the message is now: support can replay it from there
            result.reason += f"; dead-lettered: {dead[0].note.removeprefix('dead letter: ')}"
        return result
    if dead:
        letter = dead[0]
        # The consumer that gave the message up is its sibling: same producer span, another consumer.
        rejecter = next(
            (
                s
                for s in steps
                if s.kind == "consumer" and s.parent_id == letter.parent_id and s.span_id != letter.span_id
            ),
            letter,
        )
        result.outcome, result.service, result.step = "failed", rejecter.service, rejecter.operation
        result.reason = f"message {letter.note.removeprefix('dead letter: ')}"
        return result
    last = max(steps, key=lambda s: s.start_ms + s.duration_ms)
    unconsumed = [
        s
        for s in steps
        if s.kind == "producer" and not any(c.kind == "consumer" for c in children.get(s.span_id, []))
    ]
    result.outcome = "stuck"
    if unconsumed:
        result.service, result.step = unconsumed[-1].service, unconsumed[-1].operation
        result.reason = "the message was published and no service consumed it"
    else:
        result.service, result.step = last.service, last.operation
        result.reason = "nothing happened after this step"
    return result
