"""Test layers, one marker each (select with -m): tests/unit (in-memory exporters), tests/integration
(real RabbitMQ and PostgreSQL), tests/stack (the whole local stack: collector, Jaeger, Prometheus, ...),
tests/e2e (the example services on the stack, orders with every fault)."""

from pathlib import Path

import pytest

from tests.kit_fixtures import kit, spans  # noqa: F401 - fixtures shared by the layers
from tests.stack_fixtures import stack  # noqa: F401 - the local stack, for the stack and e2e layers

_LAYERS = ("unit", "integration", "stack", "e2e")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: in-process tests with in-memory exporters")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = Path(item.fspath).relative_to(Path(__file__).parent).parts[0]
        if layer in _LAYERS:
            item.add_marker(getattr(pytest.mark, layer))
