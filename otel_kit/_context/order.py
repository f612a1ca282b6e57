"""The business key: `order.id` in W3C baggage (so it crosses every hop) and on the current span."""

from __future__ import annotations

import functools
import inspect
import logging
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from opentelemetry import baggage, context, trace

ORDER_ID_KEY = "order.id"
_MAX_LENGTH = 128
# Ids end up in HTTP headers, AMQP headers and Jaeger search: keep to a safe, readable alphabet.
_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]*")
_log = logging.getLogger("otel_kit")

F = TypeVar("F", bound=Callable[..., Any])


EXPECTED = (
    f"expected up to {_MAX_LENGTH} characters of letters, digits and ._:- (starting with a letter or digit)"
)


def is_valid(value: str) -> bool:
    return len(value) <= _MAX_LENGTH and _VALID.fullmatch(value) is not None


def _validated(order_id: object) -> str | None:
    # Only types whose text is the id: str() of anything else (a model, a float) is not one.
    accepted = isinstance(order_id, int | str | uuid.UUID) and not isinstance(order_id, bool)
    value = str(order_id) if accepted else None
    if value is None or not is_valid(value):
        # Never raise in the request path: the order proceeds, untagged.
        _log.warning("otel_kit: order id %.80r dropped: " + EXPECTED, order_id)
        return None
    return value


class order(AbstractContextManager):
    """Tag everything done for one order with `order.id`, here and in every service downstream.

    ```python
    with otel_kit.order(order_id):
        db.insert(...); channel.basic_publish(...)   # spans and messages carry order.id

    @otel_kit.order(from_arg="order_id")              # the id read from each call's arguments
    async def get_order(order_id: str): ...
    ```
    """

    def __init__(self, order_id: object = None, *, from_arg: str | None = None) -> None:
        if (order_id is None) == (from_arg is None):
            raise TypeError("otel_kit.order() takes either an order id or from_arg='<parameter name>'")
        self._order_id = order_id
        self._from_arg = from_arg
        self._tokens: list[object] = []

    def __enter__(self) -> str | None:
        value = _validated(self._order_id)
        if value is None:
            self._tokens.append(None)
            return None
        self._tokens.append(context.attach(baggage.set_baggage(ORDER_ID_KEY, value)))
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(ORDER_ID_KEY, value)
        return value

    def __exit__(self, *exc_info: object) -> None:
        token = self._tokens.pop()
        if token is not None:
            context.detach(token)

    def __call__(self, func: F) -> F:
        signature = inspect.signature(func)

        def scope(args: tuple, kwargs: dict) -> order:
            if self._from_arg is None:
                return order(self._order_id)
            bound = signature.bind_partial(*args, **kwargs).arguments
            return order(bound.get(self._from_arg, ""))

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with scope(args, kwargs):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with scope(args, kwargs):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def current_order_id() -> str | None:
    """The order id in the current context, whether set here or received from upstream."""
    value = baggage.get_baggage(ORDER_ID_KEY)
    return str(value) if value is not None else None
