"""W3C Trace Context rules that the SDK's propagator does not apply to incoming headers.

The stock `TraceContextTextMapPropagator` continues the first of two `traceparent` headers,
empties `tracestate` over one duplicated key, and holds keys to Level 1's tenant@system
grammar; the W3C's own test harness fails it on each. Here, as the recommendation reads
(https://www.w3.org/TR/trace-context-2/): a `traceparent` that is not exactly one header
is invalid and the trace restarts; `tracestate` fields are combined (RFC 9110), parsed with
Level 2's key grammar, a later duplicate key dropped, the whole header discarded for any
malformed member or more than 32 members, and over 512 characters whole entries are cut,
entries over 128 characters first. The SDK's `TraceState` cannot hold a Level 2 key such as
`foo@`, so the parsed header travels in `Tracestate`, a `TraceState` with its own members.
Upstream: open-telemetry/opentelemetry-python#5314 (a key duplicated across headers).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, KeysView, Sequence, ValuesView

from opentelemetry.trace import TraceState

_KEY = re.compile(r"[a-z0-9][_0-9a-z\-*/@]{0,255}")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_OWS = " \t"
MAX_MEMBERS = 32
MAX_LENGTH = 512  # what vendors SHOULD propagate at least; past it, whole entries are cut
_LONG_ENTRY = 128  # entries longer than this are cut first


def single_traceparent(values: list[str]) -> list[str] | None:
    """The `traceparent` field values, or None when there is not exactly one (the trace restarts).

    Two header fields, or one field holding a comma-joined list (RFC 9110 combines repeated
    fields so), cannot both be the parent: neither is believed.
    """
    if len(values) != 1 or "," in values[0]:
        return None
    return values


def parse_tracestate(values: Sequence[str]) -> Tracestate | None:
    """The combined `tracestate` fields as the recommendation parses them; None to discard."""
    members: dict[str, str] = {}
    count = 0
    for value in values:
        for member in value.split(","):
            member = member.strip(_OWS)
            if not member:
                continue  # empty and whitespace-only members are allowed
            key, equals, text = member.partition("=")
            if not equals or not _KEY.fullmatch(key) or not _VALUE.fullmatch(text):
                return None
            count += 1
            members.setdefault(key, text)  # a later duplicate is dropped, as the spec allows
    if count > MAX_MEMBERS:
        return None
    return Tracestate(_truncated(list(members.items())))


def _truncated(members: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Whole entries cut until the header fits: those over 128 characters first, last first."""

    def size(key: str, value: str) -> int:
        return len(key) + 1 + len(value)

    def length() -> int:
        return sum(size(k, v) for k, v in members) + max(len(members) - 1, 0)

    while length() > MAX_LENGTH and (
        long := [i for i, (k, v) in enumerate(members) if size(k, v) > _LONG_ENTRY]
    ):
        del members[long[-1]]
    while length() > MAX_LENGTH:
        members.pop()
    return members


class Tracestate(TraceState):
    """A `TraceState` holding members the recommendation allows and the SDK's parser refuses.

    Every reader of `TraceState` (the mapping, `to_header`, `add`/`update`/`delete`) is
    answered from its own members; a mutation returns another `Tracestate`.
    """

    def __init__(self, entries: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__()
        self._members = dict(entries)

    def __contains__(self, item: object) -> bool:
        return item in self._members

    def __getitem__(self, key: str) -> str:
        return self._members[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __repr__(self) -> str:
        return f"Tracestate({self.to_header()!r})"

    def keys(self) -> KeysView[str]:
        return self._members.keys()

    def items(self):  # type: ignore[override]  # the SDK types it as a plain view
        return self._members.items()

    def values(self) -> ValuesView[str]:
        return self._members.values()

    def to_header(self) -> str:
        return ",".join(f"{key}={value}" for key, value in self._members.items())

    def add(self, key: str, value: str) -> Tracestate:
        if key in self._members or not _valid(key, value):
            return self
        kept = list(self._members.items())[: MAX_MEMBERS - 1]  # the right-most makes room
        return Tracestate([(key, value), *kept])

    def update(self, key: str, value: str) -> Tracestate:
        if key not in self._members or not _valid(key, value):
            return self
        rest = [(k, v) for k, v in self._members.items() if k != key]
        return Tracestate([(key, value), *rest])  # modified keys move to the left

    def delete(self, key: str) -> Tracestate:
        if key not in self._members:
            return self
        return Tracestate([(k, v) for k, v in self._members.items() if k != key])


def _valid(key: str, value: str) -> bool:
    return (
        isinstance(key, str)
        and isinstance(value, str)
        and _KEY.fullmatch(key) is not None
        and _VALUE.fullmatch(value) is not None
    )
