"""Prometheus's JSON, written byte for byte as Prometheus 2.x writes it.

A cached answer is assembled from pieces of earlier answers, so it is written again, not
copied; these rules are the ones of Prometheus's own encoder (web/api/v1, jsoniter with the
standard library's escaping): keys in this order, no spaces, timestamps as seconds with three
decimals only when the milliseconds are not zero, sample values as the strings Prometheus sent
(kept as text, never parsed), label names and values escaped as Go's encoding/json does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

# Go escapes these besides what JSON requires (HTML safety), and writes other control
# characters as \u00XX; Python writes \b and \f as two-character escapes where Go (the
# version Prometheus is built with) may not, so a label holding one is not re-encoded: the
# caller passes such an answer through uncached.
_GO_EXTRA = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_UNSURE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class NotReproducible(Exception):
    """This answer holds something whose bytes this encoder cannot promise."""


def string(text: str) -> str:
    if _UNSURE.search(text):
        raise NotReproducible("a control character in a label")
    encoded = json.dumps(text, ensure_ascii=False)
    for char, escape in _GO_EXTRA.items():
        if char in encoded:
            encoded = encoded.replace(char, escape)
    return encoded


def metric(labels: dict[str, str]) -> str:
    """A series' labels as Prometheus writes them (in the order it sent them: sorted)."""
    return "{" + ",".join(f"{string(name)}:{string(value)}" for name, value in labels.items()) + "}"


def timestamp(ms: int) -> str:
    seconds, fraction = divmod(abs(ms), 1000)
    sign = "-" if ms < 0 else ""
    return f"{sign}{seconds}.{fraction:03d}" if fraction else f"{sign}{seconds}"


def parse_timestamp(text: str) -> int:
    """Milliseconds of a timestamp as Prometheus writes it ("1796086800" or "1796086800.500")."""
    seconds, _, fraction = text.partition(".")
    sign = -1 if seconds.startswith("-") else 1
    return sign * (abs(int(seconds)) * 1000 + int((fraction + "000")[:3]))


def point(ms: int, value: str) -> str:
    """One sample of a range-query answer: [time, "value as Prometheus sent it"]."""
    return f'[{timestamp(ms)},"{value}"]'


def matrix(series: Iterable[tuple[str, Iterable[str]]]) -> bytes:
    """A successful range-query answer from (encoded metric, [encoded point]) in order."""
    parts = []
    for encoded_metric, points in series:
        parts.append(f'{{"metric":{encoded_metric},"values":[{",".join(points)}]}}')
    return ('{"status":"success","data":{"resultType":"matrix","result":[' + ",".join(parts) + "]}}").encode()
