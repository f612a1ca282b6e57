"""Fixtures of the unit layer."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from otel_kit._export.sdk_warnings import _OncePerInterval


@pytest.fixture
def export_warnings(monkeypatch, caplog) -> pytest.LogCaptureFixture:
    """Warnings of otel_kit.export captured, through a limiter of their own: init() (other
    tests) rate-limits that logger, and a warning held back there would not be seen here."""
    logger = logging.getLogger("otel_kit.export")
    monkeypatch.setattr(logger, "filters", [_OncePerInterval(interval=60)])
    caplog.set_level(logging.WARNING, logger.name)
    return caplog


@pytest.fixture
def silent_collector() -> Iterator[int]:
    """A port that takes connections (the kernel's backlog) and never answers on them."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


@pytest.fixture
def refusing_collector() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed on return: connections are refused
