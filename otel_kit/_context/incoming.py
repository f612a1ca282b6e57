"""Context from upstream, made safe: extraction never raises, and a bad `order.id` goes no further.

Every extraction (FastAPI's server span, contrib's and the kit's RabbitMQ consumers,
`message_context`, anyone's `propagate.extract`) goes through the global propagator, so the
kit wraps it once. A message's headers come from any publisher: the API's propagators expect
strings and raised on an int or on bytes, and contrib's `basic_consume` wrapper let that
escape from `start_consuming()`: the consumer stopped, and so did the next one the message
was redelivered to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context, get_current
from opentelemetry.propagators import textmap

from otel_kit._context import w3c
from otel_kit._context.order import EXPECTED, ORDER_ID_KEY, is_valid

# Rate-limited (otel_kit._export.sdk_warnings): one misbehaving peer sends the same bad header every time.
_log = logging.getLogger("otel_kit.incoming")
_TRACEPARENT, _TRACESTATE = "traceparent", "tracestate"


class _Strings(textmap.Getter):
    """A getter that hands the propagators strings only: bytes decoded from UTF-8, the rest ignored.

    With `w3c`, the Trace Context headers as the recommendation reads them: no `traceparent`
    unless exactly one was sent, and no `tracestate` (the kit parses it, otel_kit._context.w3c).
    """

    def __init__(self, inner: textmap.Getter, w3c: bool) -> None:
        self._inner = inner
        self._w3c = w3c

    def get(self, carrier: textmap.CarrierT, key: str) -> list[str] | None:
        strings = self.strings(carrier, key)
        if strings is None or not self._w3c:
            return strings
        if key == _TRACEPARENT:
            return w3c.single_traceparent(strings)
        return None if key == _TRACESTATE else strings

    def strings(self, carrier: textmap.CarrierT, key: str) -> list[str] | None:
        values = self._inner.get(carrier, key)
        if values is None:
            return None
        if isinstance(values, str | bytes | bytearray) or not isinstance(values, Sequence):
            values = [values]  # a getter that returned the bare value
        strings = []
        for value in values:
            if isinstance(value, bytes | bytearray):
                try:
                    value = bytes(value).decode("utf-8")
                except UnicodeDecodeError:
                    continue
            if isinstance(value, str):
                strings.append(value)
        return strings or None

    def keys(self, carrier: textmap.CarrierT) -> list[str]:
        return self._inner.keys(carrier)


class _Guarded(textmap.TextMapPropagator):
    """The configured propagators (OTEL_PROPAGATORS), safe against whatever a carrier holds."""

    def __init__(self, inner: textmap.TextMapPropagator) -> None:
        self._inner = inner
        self._w3c = _TRACEPARENT in inner.fields  # W3C Trace Context is among OTEL_PROPAGATORS

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        strings = _Strings(getter, self._w3c)
        try:
            extracted = self._inner.extract(carrier, context, strings)
            if self._w3c:
                extracted = _with_tracestate(extracted, carrier, strings)
        except Exception as exc:  # a bad header costs the link to upstream, never the request or message
            _log.warning(
                "otel_kit: trace context not read (%s: %s); a new trace starts here", type(exc).__name__, exc
            )
            return context if context is not None else get_current()
        value = baggage.get_baggage(ORDER_ID_KEY, extracted)
        if value is None or (isinstance(value, str) and is_valid(value)):
            return extracted
        _log.warning("otel_kit: order id %.80r received in baggage dropped: " + EXPECTED, value)
        return baggage.remove_baggage(ORDER_ID_KEY, extracted)

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        self._inner.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return self._inner.fields


def _with_tracestate(extracted: Context, carrier: textmap.CarrierT, strings: _Strings) -> Context:
    """The parent continued from `traceparent`, with `tracestate` as the recommendation parses it."""
    headers = strings.strings(carrier, _TRACESTATE)
    if not headers:
        return extracted
    parent = trace.get_current_span(extracted).get_span_context()
    traceparent = strings.get(carrier, _TRACEPARENT)
    # tracestate belongs to a parsed traceparent only (not to one refused, nor to b3's parent).
    if not parent.is_remote or not traceparent or f"{parent.trace_id:032x}" not in traceparent[0]:
        return extracted
    tracestate = w3c.parse_tracestate(headers)
    if not tracestate:
        return extracted  # discarded or empty: the SDK's default, empty state
    continued = trace.SpanContext(
        parent.trace_id,
        parent.span_id,
        is_remote=True,
        trace_flags=parent.trace_flags,
        trace_state=tracestate,
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(continued), extracted)


def guard_extraction() -> None:
    """Wrap the global propagator; idempotent."""
    current = propagate.get_global_textmap()
    if not isinstance(current, _Guarded):
        propagate.set_global_textmap(_Guarded(current))
