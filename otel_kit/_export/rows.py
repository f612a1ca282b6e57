"""Finished spans as rows: tuples of plain values laid out as SpanRow, cheap to queue, pickle, encode.

The batch processor queues rows, not spans: a span waiting in the queue holds a dozen
objects the garbage collector must trace (12 us a request here, in full collections over
the whole heap); a row is one tuple of values the collector soon stops tracking. Rows are
plain tuples, not SpanRow instances: pickle writes a tuple in C, a named tuple through its
Python reduce (3x the cost per span handed to the export child). SpanRow names the fields:
`SpanRow._make(row).attributes` where speed does not matter, unpacking or the index
constants below where it does.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_kit._compat import ended_span_storage
from otel_kit._context.w3c import Tracestate


class EventRow(NamedTuple):  # the layout of SpanRow.events' tuples
    name: str
    timestamp: int
    attributes: dict
    dropped_attributes: int


class LinkRow(NamedTuple):  # the layout of SpanRow.links' tuples
    trace_id: int
    span_id: int
    flags: int
    is_remote: bool
    attributes: dict
    dropped_attributes: int


class SpanRow(NamedTuple):
    name: str
    trace_id: int
    span_id: int
    flags: int
    trace_state: tuple[tuple[str, str], ...] | None
    parent_span_id: int | None
    parent_is_remote: bool
    kind: int  # SpanKind's value
    start_time: int
    end_time: int
    attributes: dict
    dropped_attributes: int
    status_code: int  # StatusCode's value
    status_description: str | None
    events: tuple[EventRow, ...]
    dropped_events: int
    links: tuple[LinkRow, ...]
    dropped_links: int
    resource: int  # index in the catalog's resources
    scope: int  # index in the catalog's scopes


Batch = tuple[list, list, list]  # (resources, scopes, rows), as SpanCatalog.batch gives them
NAME, RESOURCE, SCOPE = (SpanRow._fields.index(name) for name in ("name", "resource", "scope"))
_KIND_VALUES = {kind: kind.value for kind in SpanKind}  # Enum.value is a slow property
_STATUS_VALUES = {code: code.value for code in StatusCode}


class SpanCatalog:
    """Turns finished spans into rows, their resource and scope kept once and named by index."""

    def __init__(self) -> None:
        self.resources: list[tuple[dict, str | None]] = []
        self.scopes: list[tuple | None] = []
        self._resource_index: dict[int, int] = {}  # by id; _kept holds each one, so no id is reused
        self._kept: list[Resource] = []
        # By value (scopes hash by name, version, schema): a tracer made per call adds no entry.
        self._scope_index: dict[InstrumentationScope | None, int] = {}
        self._lock = threading.Lock()

    def row(self, span: ReadableSpan) -> tuple:
        """The span as a row: SpanRow's fields, in its order."""
        context = span.context
        parent = span.parent
        status = span.status
        attributes, events, links = ended_span_storage(span)
        return (
            span.name,
            context.trace_id,
            context.span_id,
            int(context.trace_flags),
            tuple(context.trace_state.items()) if context.trace_state else None,
            parent.span_id if parent is not None else None,
            parent.is_remote if parent is not None else False,
            _KIND_VALUES[span.kind],
            span.start_time,
            span.end_time,
            dict(attributes or {}),
            span.dropped_attributes,
            _STATUS_VALUES[status.status_code],
            status.description,
            _events(events) if events else (),
            span.dropped_events,
            _links(links) if links else (),
            span.dropped_links,
            self._resource(span.resource),
            self._scope(span.instrumentation_scope),
        )

    def batch(self, rows: Sequence[tuple]) -> Batch:
        """(resources, scopes, rows): what `from_wire` rebuilds the spans from."""
        return list(self.resources), list(self.scopes), list(rows)

    def _resource(self, resource: Resource) -> int:
        index = self._resource_index.get(id(resource))
        if index is None:
            with self._lock:  # request threads end spans concurrently; indexes must not collide
                index = self._resource_index.get(id(resource))
                if index is None:
                    self.resources.append((dict(resource.attributes), resource.schema_url))
                    index = self._resource_index[id(resource)] = len(self.resources) - 1
                    self._kept.append(resource)
        return index

    def _scope(self, scope: InstrumentationScope | None) -> int:
        index = self._scope_index.get(scope)
        if index is None:
            with self._lock:
                index = self._scope_index.get(scope)
                if index is None:
                    self.scopes.append(
                        None
                        if scope is None
                        else (scope.name, scope.version, scope.schema_url, dict(scope.attributes or {}))
                    )
                    index = self._scope_index[scope] = len(self.scopes) - 1
        return index


def _events(events: Sequence[Event]) -> tuple[tuple, ...]:  # EventRow's layout
    return tuple((e.name, e.timestamp, dict(e.attributes or {}), e.dropped_attributes) for e in events)


def _links(links: Sequence[Link]) -> tuple[tuple, ...]:  # LinkRow's layout
    return tuple(
        (
            link.context.trace_id,
            link.context.span_id,
            int(link.context.trace_flags),
            link.context.is_remote,
            dict(link.attributes or {}),
            link.dropped_attributes,
        )
        for link in links
    )


def from_wire(resources: list, scopes: list, rows: list[tuple]) -> list[ReadableSpan]:
    """The spans of a `SpanCatalog.batch`, as ReadableSpans the OTLP encoder reads the same way."""
    sdk_resources = [Resource(attributes, schema_url) for attributes, schema_url in resources]
    sdk_scopes = [
        None if scope is None else InstrumentationScope(scope[0], scope[1], scope[2], scope[3] or None)
        for scope in scopes
    ]
    spans = []
    for row in map(SpanRow._make, rows):
        context = SpanContext(
            row.trace_id,
            row.span_id,
            False,
            TraceFlags(row.flags),
            Tracestate(row.trace_state) if row.trace_state else None,
        )
        parent = None
        if row.parent_span_id is not None:
            parent = SpanContext(row.trace_id, row.parent_span_id, row.parent_is_remote)
        events = [
            Event(event.name, _attributes(event.attributes, event.dropped_attributes), event.timestamp)
            for event in map(EventRow._make, row.events)
        ]
        links = [
            Link(
                SpanContext(link.trace_id, link.span_id, link.is_remote, TraceFlags(link.flags)),
                _attributes(link.attributes, link.dropped_attributes),
            )
            for link in map(LinkRow._make, row.links)
        ]
        spans.append(
            ReadableSpan(
                name=row.name,
                context=context,
                parent=parent,
                resource=sdk_resources[row.resource],
                attributes=_attributes(row.attributes, row.dropped_attributes),
                events=_bounded(events, row.dropped_events),
                links=_bounded(links, row.dropped_links),
                kind=SpanKind(row.kind),
                status=Status(StatusCode(row.status_code), row.status_description),
                start_time=row.start_time,
                end_time=row.end_time,
                instrumentation_scope=sdk_scopes[row.scope],
            )
        )
    return spans


def export_batch(exporter: SpanExporter, batch: Batch) -> SpanExportResult:
    """Export a `SpanCatalog.batch`: as rows if the exporter takes them (encoder), else as spans."""
    export_rows = getattr(exporter, "export_rows", None)
    if export_rows is not None:
        return export_rows(batch)
    return exporter.export(from_wire(*batch))


def _attributes(values: dict, dropped: int) -> Any:
    if not dropped:
        return values
    bounded = BoundedAttributes(maxlen=None, attributes=values, immutable=False)
    bounded.dropped = dropped
    return bounded


def _bounded(items: list, dropped: int) -> Any:
    if not dropped:
        return items
    bounded = BoundedList.from_seq(None, items)
    bounded.dropped = dropped
    return bounded
