"""otel_kit.order: baggage, the current span, validation that never raises in the request path."""

import asyncio
import logging
import uuid

import pytest
from opentelemetry import baggage, trace

import otel_kit

tracer = trace.get_tracer("test")


def test_order_tags_current_span_every_child_and_baggage(spans):
    with tracer.start_as_current_span("request"):
        with otel_kit.order("A-17") as value:
            assert value == "A-17"
            assert baggage.get_baggage("order.id") == "A-17"
            assert otel_kit.current_order_id() == "A-17"
            with tracer.start_as_current_span("child"), tracer.start_as_current_span("grandchild"):
                pass
        with tracer.start_as_current_span("after"):
            pass
    assert otel_kit.current_order_id() is None
    attrs = {span.name: span.attributes.get("order.id") for span in spans.all()}
    assert attrs == {"request": "A-17", "child": "A-17", "grandchild": "A-17", "after": None}


def test_integer_ids_are_accepted(spans):
    with tracer.start_as_current_span("s"), otel_kit.order(1042):
        assert otel_kit.current_order_id() == "1042"


def test_uuid_ids_are_accepted_as_their_text(spans):
    order_id = uuid.UUID("0b6a4a1e-6c8e-4c1e-9a57-3d2f0e7c9b21")  # a UUID primary key, as ORMs return it
    with tracer.start_as_current_span("s"), otel_kit.order(order_id) as value:
        assert value == otel_kit.current_order_id() == "0b6a4a1e-6c8e-4c1e-9a57-3d2f0e7c9b21"
    assert spans.named("s").attributes["order.id"] == "0b6a4a1e-6c8e-4c1e-9a57-3d2f0e7c9b21"


@pytest.mark.parametrize(
    "bad", ["", "has space", "a" * 129, "semi;colon", "-leading", "x,y", None, 1.5, True]
)
def test_bad_id_is_dropped_with_a_warning_and_the_block_still_runs(spans, caplog, bad):
    ran = False
    with (
        caplog.at_level(logging.WARNING, "otel_kit"),
        tracer.start_as_current_span("s"),
        otel_kit.order(bad if bad is not None else "") as value,
    ):
        ran = True
        assert value is None
        assert otel_kit.current_order_id() is None
    assert ran
    assert "order id" in caplog.text
    assert "dropped" in caplog.text
    assert "order.id" not in spans.named("s").attributes


def test_nested_orders_restore_the_outer_one():
    with otel_kit.order("OUTER"):
        with otel_kit.order("INNER"):
            assert otel_kit.current_order_id() == "INNER"
        assert otel_kit.current_order_id() == "OUTER"


def test_decorator_with_fixed_id_and_from_argument(spans):
    @otel_kit.order(from_arg="order_id")
    def handle(customer: str, order_id: str) -> str | None:
        with tracer.start_as_current_span("handle"):
            return otel_kit.current_order_id()

    @otel_kit.order("FIXED-1")
    def fixed() -> str | None:
        return otel_kit.current_order_id()

    assert handle("bob", order_id="B-2") == "B-2"
    assert handle("bob", "B-3") == "B-3"
    assert fixed() == "FIXED-1"
    assert spans.all()[0].attributes["order.id"] == "B-2"


def test_decorator_on_coroutine_keeps_the_order_across_awaits():
    @otel_kit.order(from_arg="order_id")
    async def handle(order_id: str) -> str | None:
        await asyncio.sleep(0)
        return otel_kit.current_order_id()

    assert asyncio.run(handle("C-9")) == "C-9"


def test_order_needs_exactly_one_of_id_or_from_arg():
    with pytest.raises(TypeError, match="either an order id or from_arg"):
        otel_kit.order()


def test_only_configured_baggage_keys_become_attributes(spans):
    ctx = baggage.set_baggage("customer.email", "bob@example.com", baggage.set_baggage("order.id", "D-1"))
    with tracer.start_as_current_span("s", context=ctx):
        pass
    assert spans.named("s").attributes == {"order.id": "D-1"}
