"""Zero-code start: `opentelemetry-instrument uvicorn app:app` runs `otel_kit.init()` via entry points."""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro

from otel_kit._compat import BaseConfigurator


class OtelKitConfigurator(BaseConfigurator):
    """Configures providers and the kit's integrations exactly as `otel_kit.init()` would."""

    def _configure(self, **kwargs: Any) -> None:
        import otel_kit

        otel_kit.init()  # the service name comes from OTEL_SERVICE_NAME


class OtelKitDistro(BaseDistro):
    """Leaves the libraries the kit instruments itself to the kit; loads any other instrumentor."""

    def _configure(self, **kwargs: Any) -> None:
        pass

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        from otel_kit.integrations import INTEGRATIONS

        if entry_point.name in {integration.name for integration in INTEGRATIONS}:
            return
        super().load_instrumentor(entry_point, **kwargs)
