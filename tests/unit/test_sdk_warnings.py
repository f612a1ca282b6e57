"""The SDK's per-span 'Queue full' warning is said once a minute, with a count of the rest."""

import logging

from otel_kit._export.sdk_warnings import _OncePerInterval


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord(
        "opentelemetry.sdk._shared_internal", logging.WARNING, __file__, 1, msg, (), None
    )


def test_repeats_are_held_back_then_counted():
    limiter = _OncePerInterval(interval=3600)
    passed = [limiter.filter(_record("Queue full, dropping %s.")) for _ in range(1000)]
    assert passed.count(True) == 1
    assert limiter.filter(_record("another message")) is True


def test_next_message_after_the_interval_says_how_many_were_held():
    limiter = _OncePerInterval(interval=0)
    limiter.filter(_record("Queue full, dropping %s."))
    limiter._interval = 3600
    for _ in range(5):
        limiter.filter(_record("Queue full, dropping %s."))
    limiter._interval = 0
    record = _record("Queue full, dropping %s.")
    assert limiter.filter(record) is True
    assert record.msg == "Queue full, dropping %s. (5 more like this in the last 0 s)"
