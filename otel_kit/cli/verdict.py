"""Where did an order stop? The verdict on an order's spans, as Jaeger's query API returns them.

The order's warning and error log records (otel_kit.cli.log_store), when given, go with the
verdict: a cause that only a log line holds (a rejected order, a swallowed exception) is quoted.

Kept apart from the CLI so that the rules can be read, and tested, on their own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from otel_kit.cli.log_store import SEVERITIES, LogLine


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
    address: str | None = None  # host:port a client span called, or a server span answered at
    unreachable: str | None = None  # why a call got no answer: "unreachable (connection refused)", ...
    peer_name: str | None = None  # who the peer is, when the span says (peer.service, db, S3)


@dataclass
class Verdict:
    order_id: str
    outcome: str  # completed | failed | stuck | unknown
    service: str | None = None
    step: str | None = None
    reason: str | None = None
    peer: str | None = None  # the service or server a failed call could not reach
    trace_ids: list[str] = field(default_factory=list)
    timeline: list[Step] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)  # the order's warnings and errors, oldest first
    logged_cause: LogLine | None = None  # the error record the reason quotes

    def summary(self) -> str:
        if self.outcome == "unknown":
            return f"{self.order_id}: no trace in Jaeger"
        if self.outcome == "completed":
            extra = f" ({self.reason})" if self.reason else ""
            return f"{self.order_id}: completed{extra}"
        where = "stuck after" if self.outcome == "stuck" else "failed at"
        service = f"{self.service} -> {self.peer}" if self.peer else self.service
        return f"{self.order_id}: {where} {service}: {self.step} - {self.reason}"

    def slowest_leaf(self) -> Step | None:
        """The slowest span that has no child: where the time really went."""
        parents = {step.parent_id for step in self.timeline}
        leaves = [step for step in self.timeline if step.span_id not in parents]
        return max(leaves, key=lambda step: step.duration_ms, default=None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


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


# How a call that got no answer failed, read from its error: the words differ by library
# (httpx, requests, botocore, psycopg2) and by OS, the causes do not.
_UNREACHABLE = (
    ("unreachable (connection refused)", re.compile(r"refused|ECONNREFUSED|Errno 111\b", re.IGNORECASE)),
    (
        "unreachable (connect timed out)",
        re.compile(r"ConnectTimeout|connect timeout|timeout expired", re.IGNORECASE),
    ),
    ("no answer (timed out)", re.compile(r"timed? ?out|Timeout", re.IGNORECASE)),
    (
        "unreachable (name not resolved)",
        re.compile(r"not known|nodename nor servname|getaddrinfo|name resolution", re.IGNORECASE),
    ),
    (
        "unreachable (no connection)",
        re.compile(r"ConnectError|EndpointConnectionError|could not connect|reset by peer", re.IGNORECASE),
    ),
)


def _unreachable(tags: dict[str, Any], note: str) -> str | None:
    """Why a client call got no answer, or None if it got one (any HTTP status is an answer)."""
    if tags.get("span.kind") != "client" or "http.response.status_code" in tags or not note:
        return None
    return next((why for why, pattern in _UNREACHABLE if pattern.search(note)), None)


def _peer(tags: dict[str, Any]) -> tuple[str | None, str | None]:
    """The span's host:port (called, or answered at), and the peer's name where the span says it."""
    host = tags.get("server.address") or tags.get("net.peer.name")
    port = tags.get("server.port") or tags.get("net.peer.port")
    if not host and tags.get("url.full"):
        match = re.match(r"\w+://([^/:?#]+)(?::(\d+))?", str(tags["url.full"]))
        if match:
            host, port = match[1], match[2] or ("443" if str(tags["url.full"]).startswith("https") else "80")
    address = f"{host}:{port}" if host and port else None
    if tags.get("peer.service"):
        return address, str(tags["peer.service"])
    if tags.get("db.system"):
        database = tags.get("db.name") or tags.get("db.namespace")
        return address, f"{tags['db.system']} db {database}" if database else str(tags["db.system"])
    if tags.get("rpc.system") == "aws-api" and tags.get("rpc.service"):
        return address, str(tags["rpc.service"])
    return address, None


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
        note = _note(span, tags)
        address, peer_name = _peer(tags)
        steps.append(
            Step(
                start_ms=round((span["startTime"] - origin) / 1000, 1),
                service=service,
                operation=span["operationName"],
                duration_ms=round(span["duration"] / 1000, 1),
                error=bool(tags.get("error")) or tags.get("otel.status_code") == "ERROR",
                note=note,
                span_id=span["spanID"],
                parent_id=parents[0] if parents else None,
                kind=str(tags.get("span.kind", "")),
                address=address,
                unreachable=_unreachable(tags, note),
                peer_name=peer_name,
            )
        )
    return steps


def verdict(
    order_id: str,
    traces: list[dict],
    done: tuple[str, str],
    service_at: Callable[[str, int], str | None] | None = None,
    logs: list[LogLine] | None = None,
) -> Verdict:
    """The verdict of `_span_verdict`, with the order's log records: if it did not complete,
    the reason quotes the error record logged by the service where it stopped (else the last
    error record of any service), unless the reason already says it."""
    result = _span_verdict(order_id, traces, done, service_at)
    result.logs = list(logs or [])
    errors = [line for line in result.logs if line.severity_number >= SEVERITIES["error"]]
    if result.outcome in ("failed", "stuck") and errors:
        own = [line for line in errors if line.service == result.service]
        result.logged_cause = cause = (own or errors)[-1]
        if cause.message not in (result.reason or ""):
            result.reason = f"{result.reason}; {cause.service} logged: {cause.message}"
    return result


def _span_verdict(
    order_id: str,
    traces: list[dict],
    done: tuple[str, str],
    service_at: Callable[[str, int], str | None] | None,
) -> Verdict:
    """completed if the order reached the terminal step `done` (service, operation); else the cause.

    Failed: the deepest error (an error span without an erroring child: the CRM's 500, not
    the MES client span that saw it) and, if the message was dead-lettered, where it went;
    else the consumer whose message was dead-lettered. A call that got no answer names its
    peer: the span's own word (peer.service, the database, S3), else the service whose
    server spans answer at that host:port, in these traces or, through `service_at`, others.
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
        if cause.unreachable:
            result.peer = _peer_name(cause, steps, service_at)
            result.reason = f"{cause.unreachable}: {result.reason}"
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


def _peer_name(
    call: Step, steps: list[Step], service_at: Callable[[str, int], str | None] | None
) -> str | None:
    if call.peer_name:
        return call.peer_name
    if not call.address:
        return None
    answered = [s.service for s in steps if s.kind == "server" and s.address == call.address]
    if answered:
        return answered[-1]
    host, _, port = call.address.rpartition(":")
    found = service_at(host, int(port)) if service_at and port.isdigit() else None
    return found or call.address
