"""Fixtures of the unit layer."""

from __future__ import annotations

import logging

import pytest

from otel_kit._quiet import _OncePerInterval


@pytest.fixture
def export_warnings(monkeypatch, caplog) -> pytest.LogCaptureFixture:
    """Warnings of otel_kit.export captured, through a limiter of their own: init() (other
    tests) rate-limits that logger, and a warning held back there would not be seen here."""
    logger = logging.getLogger("otel_kit.export")
    monkeypatch.setattr(logger, "filters", [_OncePerInterval(interval=60)])
    caplog.set_level(logging.WARNING, logger.name)
    return caplog
