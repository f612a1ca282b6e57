"""Test layers, one marker each (select with -m): tests/unit (in-memory exporters), tests/integration
(real RabbitMQ and PostgreSQL), tests/stack (the whole local stack: collector, Jaeger, Prometheus, ...)."""

from pathlib import Path

import pytest

from tests.kit_fixtures import kit, spans  # noqa: F401 - fixtures shared by both layers

_LAYERS = ("unit", "integration", "stack")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: in-process tests with in-memory exporters")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = Path(item.fspath).relative_to(Path(__file__).parent).parts[0]
        if layer in _LAYERS:
            item.add_marker(getattr(pytest.mark, layer))
