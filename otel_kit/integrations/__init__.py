"""Which integrations exist, which to enable, and enabling them without ever breaking the app.

An integration is declared here (its name, the library that turns it on, the contrib
instrumentor it builds on, the pip extra) and lives in the module of its name, which has one
entry point, `instrument(settings)`. One asked for but not installed is refused with a
ConfigError naming the pip extra; one whose `instrument` raises is logged and left off. At
run time each module guards its own hooks: a failure in them costs telemetry, not the call.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import logging
import re
from dataclasses import dataclass

from otel_kit._config.settings import ConfigError, Settings

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
    _warn_if_misspelt(settings.disabled_instrumentations)
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


def _warn_if_misspelt(disabled: tuple[str, ...]) -> None:
    """Name each entry of OTEL_PYTHON_DISABLED_INSTRUMENTATIONS that disables nothing.

    Names are matched exactly, as contrib's loader matches them: `psycog2` or
    `system-metrics` (the pip package's spelling) left the instrumentation on in silence.
    """
    if not disabled:
        return
    from importlib.metadata import entry_points

    installed = {integration.name for integration in INTEGRATIONS}
    installed |= {entry.name for entry in entry_points(group="opentelemetry_instrumentor")}
    try:  # contrib's list of its instrumentations: one not installed here disables nothing, rightly
        from opentelemetry.instrumentation.bootstrap_gen import default_instrumentations, libraries

        packages = [library["instrumentation"] for library in libraries] + list(default_instrumentations)
        contrib = {_spelling(re.sub(r"^opentelemetry-instrumentation-|[=<>~!].*$", "", p)) for p in packages}
    except ImportError:
        contrib = set()
    installed_by_spelling = {_spelling(name): name for name in installed}
    for name in disabled:
        if name in installed:
            continue
        near = installed_by_spelling.get(_spelling(name))
        if near is None and _spelling(name) in contrib:
            continue
        near = near or next(iter(difflib.get_close_matches(name, sorted(installed), n=1, cutoff=0.8)), None)
        _log.warning(
            "otel_kit: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS names %r, which disables nothing "
            "(no instrumentation has that name)%s",
            name,
            f"; did you mean {near}?" if near else "",
        )


def _spelling(name: str) -> str:
    return name.lower().replace("-", "_")


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
