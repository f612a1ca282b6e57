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

from opentelemetry import baggage, propagate
from opentelemetry.context import Context, get_current
from opentelemetry.propagators import textmap

from otel_kit._order import EXPECTED, ORDER_ID_KEY, is_valid

# Rate-limited (otel_kit._quiet): one misbehaving peer sends the same bad header every time.
_log = logging.getLogger("otel_kit.incoming")


class _Strings(textmap.Getter):
    """A getter that hands the propagators strings only: bytes decoded from UTF-8, the rest ignored."""

    def __init__(self, inner: textmap.Getter) -> None:
        self._inner = inner

    def get(self, carrier: textmap.CarrierT, key: str) -> list[str] | None:
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

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        try:
            extracted = self._inner.extract(carrier, context, _Strings(getter))
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


def guard_extraction() -> None:
    """Wrap the global propagator; idempotent."""
    current = propagate.get_global_textmap()
    if not isinstance(current, _Guarded):
        propagate.set_global_textmap(_Guarded(current))
