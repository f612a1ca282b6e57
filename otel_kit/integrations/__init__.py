"""Which integrations exist, which to enable, and enabling them without ever breaking the app."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass

from otel_kit._settings import ConfigError, Settings

_log = logging.getLogger("otel_kit")


@dataclass(frozen=True)
class Integration:
    name: str
    library: str | None  # the module whose presence turns the integration on
    instrumentor: str | None  # the contrib package module it builds on
    extra: str | None  # the pip extra that installs both


INTEGRATIONS = (
    Integration("fastapi", "fastapi", "opentelemetry.instrumentation.fastapi", "fastapi"),
    Integration("requests", "requests", "opentelemetry.instrumentation.requests", "requests"),
    Integration("httpx", "httpx", "opentelemetry.instrumentation.httpx", "httpx"),
    Integration("pika", "pika", "opentelemetry.instrumentation.pika", "pika"),
    Integration("psycopg2", "psycopg2", "opentelemetry.instrumentation.psycopg2", "psycopg2"),
    Integration("botocore", "botocore", "opentelemetry.instrumentation.botocore", "boto3"),
    Integration("logging", None, "opentelemetry.instrumentation.logging", None),
    Integration("system_metrics", None, "opentelemetry.instrumentation.system_metrics", None),
)


def _importable(module: str | None) -> bool:
    return module is None or importlib.util.find_spec(module) is not None


def select(settings: Settings) -> list[Integration]:
    """The integrations to enable: the requested ones (each must be installable) or every importable one."""
    disabled = set(settings.disabled_instrumentations)
    chosen = []
    for integration in INTEGRATIONS:
        if integration.name in disabled:
            continue
        requested = settings.instrumentations is not None and integration.name in settings.instrumentations
        if settings.instrumentations is not None and not requested:
            continue
        has_library = _importable(integration.library)
        has_instrumentor = _importable(integration.instrumentor)
        if has_library and has_instrumentor:
            chosen.append(integration)
        elif requested:
            missing = integration.library if not has_library else integration.instrumentor
            raise ConfigError(
                f"OTEL_KIT_INSTRUMENTATIONS asks for {integration.name!r} but {missing} is not installed: "
                f"pip install 'otel-kit[{integration.extra}]'"
            )
        elif has_library:
            _log.warning(
                "otel_kit: %s is installed but not traced, %s is missing: pip install 'otel-kit[%s]'",
                integration.library,
                integration.instrumentor,
                integration.extra,
            )
    return chosen


def enable(integrations: list[Integration], settings: Settings) -> list[str]:
    """Enable each integration; one that fails is logged and skipped, the app goes on."""
    enabled = []
    for integration in integrations:
        try:
            module = importlib.import_module(f"otel_kit.integrations.{integration.name}")
            module.instrument(settings)
        except Exception:
            _log.warning("otel_kit: %s instrumentation failed and is off", integration.name, exc_info=True)
        else:
            enabled.append(integration.name)
    return enabled
