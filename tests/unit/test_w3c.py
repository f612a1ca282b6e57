"""Incoming W3C Trace Context, rule by rule as the recommendation states them.

https://www.w3.org/TR/trace-context-2/: "traceparent Header", "tracestate Header",
"Mutating the tracestate Field". Each case goes through the global propagator the kit
guards (what every server and consumer extracts with) and back out with `inject`, as a
service forwards the context to its next hop.
"""

from __future__ import annotations

import pytest
from opentelemetry import propagate, trace

from otel_kit._context.w3c import Tracestate

pytestmark = pytest.mark.usefixtures("kit")  # the kit's guarded global propagator

TRACE_ID = "12345678901234567890123456789012"
PARENT = f"00-{TRACE_ID}-1234567890123456-01"


def forwarded(headers: dict[str, str | list[str]]) -> dict[str, str]:
    """The headers a service sends on after receiving `headers` (a list is repeated fields)."""
    outgoing: dict[str, str] = {}
    propagate.inject(outgoing, context=propagate.extract(headers))
    return outgoing


def tracestate_of(headers: dict[str, str | list[str]]) -> str | None:
    return forwarded({"traceparent": PARENT, **headers}).get("tracestate")


# --- traceparent -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        [PARENT, f"00-{'1' * 32}-1234567890123456-01"],  # two header fields
        [f"{PARENT},00-{'1' * 32}-1234567890123456-01"],  # the same, combined as RFC 9110 does
        [PARENT, PARENT],  # even when they agree: a traceparent is one field
    ],
)
def test_more_than_one_traceparent_restarts_the_trace(fields):
    assert "traceparent" not in forwarded({"traceparent": fields})
    context = propagate.extract({"traceparent": fields, "tracestate": "foo=1"})
    assert not trace.get_current_span(context).get_span_context().is_valid


@pytest.mark.parametrize(
    "value",
    [
        f"ff-{TRACE_ID}-1234567890123456-01",  # version ff is invalid
        f"00-{TRACE_ID}-1234567890123456-01-extra",  # version 00 has exactly four fields
        "00-0AF7651916CD43DD8448EB211C80319C-1234567890123456-01",  # hex is lowercase
        f"00-{'0' * 32}-1234567890123456-01",  # all-zero trace-id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent-id
        f"00-{TRACE_ID}-1234567890123456-1",  # flags are two hex digits
    ],
)
def test_an_invalid_traceparent_is_not_continued_and_its_tracestate_not_parsed(value):
    context = propagate.extract({"traceparent": value, "tracestate": "foo=1"})
    assert not trace.get_current_span(context).get_span_context().is_valid


@pytest.mark.parametrize(
    "value",
    [
        f" \t{PARENT}\t ",  # optional whitespace around the value
        f"cc-{TRACE_ID}-1234567890123456-01-what-the-future-will-be-like",  # a later version
    ],
)
def test_a_valid_traceparent_is_continued(value):
    outgoing = forwarded({"traceparent": value})
    assert outgoing["traceparent"].split("-")[1] == TRACE_ID


# --- tracestate parsing ------------------------------------------------------------------


def test_tracestate_fields_are_combined_in_order():
    assert tracestate_of({"tracestate": ["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]}) == (
        "foo=1,bar=2,rojo=1,congo=2,baz=3"
    )


@pytest.mark.parametrize(
    ("fields", "kept"),
    [
        (["foo=1,foo=1"], "foo=1"),
        (["foo=1,foo=2"], "foo=1"),  # a later duplicate is dropped; the header is kept
        (["foo=1", "foo=2,bar=3"], "foo=1,bar=3"),
    ],
)
def test_a_duplicated_key_keeps_the_first_and_the_rest_of_the_header(fields, kept):
    assert tracestate_of({"tracestate": fields}) == kept


@pytest.mark.parametrize(
    "key",
    [
        "foo@",  # Level 2: at signs anywhere after the first character
        "foo@@bar",
        "foo@bar@baz",
        "t" * 241 + "@" + "v" * 14,
        "t" * 242 + "@v",  # over Level 1's 241-character tenant, within the 256-character key
        "t@" + "v" * 15,
        "z" * 256,
        "0digit-first_*/",
    ],
)
def test_keys_the_recommendation_allows_are_kept(key):
    assert tracestate_of({"tracestate": ["foo=1", f"{key}=1"]}) == f"foo=1,{key}=1"


@pytest.mark.parametrize(
    "bad",
    [
        "@foo=1",  # a key starts with a lowercase letter or a digit
        "z" * 257 + "=1",  # over 256 characters
        "FOO=1",
        "foo.bar=1",
        "foo =1",
        "foo=bar=baz",  # '=' is not a value character
        "foo=",  # a value has at least one character
        "foo=1\x7f",
        "novalue",
    ],
)
def test_one_malformed_member_discards_the_whole_header(bad):
    assert tracestate_of({"tracestate": ["bar=2", bad]}) is None


def test_thirty_two_members_are_kept_and_thirty_three_discarded():
    members = [f"bar{i:02}={i:02}" for i in range(1, 34)]
    assert tracestate_of({"tracestate": ",".join(members[:32])}) == ",".join(members[:32])
    assert tracestate_of({"tracestate": ",".join(members)}) is None


@pytest.mark.parametrize("value", ["", " ", "\t,  ,", "foo=1,,  ,bar=2", "\t foo=1 \t"])
def test_empty_members_and_whitespace_around_members_are_ignored(value):
    expected = {"": None, " ": None, "\t,  ,": None, "foo=1,,  ,bar=2": "foo=1,bar=2"}
    assert tracestate_of({"tracestate": value}) == expected.get(value, "foo=1")


def test_a_value_keeps_its_leading_spaces_and_every_allowed_character():
    value = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=").rstrip()
    assert tracestate_of({"tracestate": f"foo= {value}"}) == f"foo= {value}"


def test_over_512_characters_whole_entries_are_cut_long_ones_first():
    long_entry = "long=" + "x" * 200  # over 128 characters: cut first, wherever it stands
    short = [f"k{i:02}=" + "v" * 20 for i in range(20)]  # 24 characters each
    header = ",".join([short[0], long_entry, *short[1:]])
    assert len(header) > 512
    kept = tracestate_of({"tracestate": header})
    assert kept == ",".join(short)  # 20 * 24 + 19 commas = 499: fits once the long one is gone
    many = ",".join(f"k{i:02}=" + "v" * 20 for i in range(30))  # 30 short ones, 749 characters
    kept = tracestate_of({"tracestate": many})
    assert len(kept) <= 512
    assert many.startswith(kept)


# --- tracestate mutation -----------------------------------------------------------------


def test_added_and_updated_keys_move_to_the_left_and_never_repeat():
    state = Tracestate([("rojo", "1"), ("congo", "2")])
    assert state.add("new", "3").to_header() == "new=3,rojo=1,congo=2"
    assert state.add("rojo", "9") is state  # adding never repeats a key
    assert state.update("congo", "5").to_header() == "congo=5,rojo=1"
    assert state.delete("rojo").to_header() == "congo=2"
    assert state.add("Bad", "1") is state
    assert state.update("rojo", "a=b") is state


def test_adding_a_thirty_third_member_drops_the_right_most():
    state = Tracestate([(f"k{i}", "v") for i in range(32)])
    added = state.add("new", "v")
    assert len(added) == 32
    assert next(iter(added)) == "new"
    assert "k31" not in added


def test_a_continued_span_keeps_the_parsed_tracestate(spans):
    from opentelemetry import context

    token = context.attach(propagate.extract({"traceparent": PARENT, "tracestate": "foo@=1,bar=2"}))
    try:
        with trace.get_tracer("test").start_as_current_span("child"):
            outgoing: dict[str, str] = {}
            propagate.inject(outgoing)
    finally:
        context.detach(token)
    assert outgoing["tracestate"] == "foo@=1,bar=2"
    assert spans.named("child").context.trace_state.to_header() == "foo@=1,bar=2"
