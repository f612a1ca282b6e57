"""otel-kit: one line to trace a Python service end to end.

```python
import otel_kit
otel_kit.init("shop")          # before the app is created or any connection is opened

with otel_kit.order(order_id):  # every span here and downstream carries order.id
    ...
```
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Unpack

from otel_kit._config import sdk_environment
from otel_kit._config.settings import ConfigError, InitSettings, Settings, resolve, unknown_kit_variables
from otel_kit._context.order import current_order_id, order

if TYPE_CHECKING:  # the SDK is imported by init(), not by `import otel_kit` (the CLI needs neither)
    from otel_kit._setup import Providers

__all__ = [
    "ConfigError",
    "InitSettings",
    "Settings",
    "Telemetry",
    "current_order_id",
    "init",
    "message_context",
    "order",
    "shutdown",
]

_log = logging.getLogger("otel_kit")
_lock = threading.Lock()
_current: Telemetry | None = None


@dataclass
class Telemetry:
    """What `init` set up; returned again by every later call."""

    settings: Settings
    providers: Providers | None = None  # None when OTEL_SDK_DISABLED=true
    instrumented: list[str] = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)

    @property
    def enabled(self) -> bool:
        return self.providers is not None

    @property
    def metrics_port(self) -> int | None:
        """The port /metrics is served on, or None if not served (other exporter, or the port was taken)."""
        return self.providers.metrics_port if self.providers else None


def init(service_name: str | None = None, *, app: Any = None, **settings: Unpack[InitSettings]) -> Telemetry:
    """Set up tracing, metrics and logs for this process and instrument every supported library found.

    Settings are keyword arguments named as in `otel_kit.Settings`, typed for editors in
    `InitSettings` (for example `traces_exporter="console"`); each falls back to its OTEL_*
    variable, then OTEL_KIT_*, then a default. Raises ConfigError naming any invalid or
    unknown one. Safe to call again: later calls return the first handle. Pass `app=` to
    instrument a FastAPI app created earlier.
    """
    global _current
    resolved = resolve({"service_name": service_name, **settings})
    with _lock:
        if _current is None:
            _current = _start(resolved)
        else:
            _warn_if_different(_current, resolved)
    if app is not None and _current.enabled and "fastapi" in _current.instrumented:
        from otel_kit.integrations import fastapi as fastapi_integration

        fastapi_integration.instrument_app(app)
    return _current


def _start(resolved: Settings) -> Telemetry:
    if resolved.disabled:
        _log.info("otel_kit: OTEL_SDK_DISABLED=true, telemetry is off")
        return Telemetry(resolved)
    # Before the SDK is imported: some of its modules read their variables at import time.
    sdk_environment.check_sdk_environment(os.environ, resolved.otlp_protocol)
    for message in unknown_kit_variables(os.environ):
        _log.warning("otel_kit: %s", message)
    from otel_kit import _setup, integrations

    chosen = integrations.select(resolved)  # raises before anything global is touched
    sdk_environment.align_environment(os.environ)  # read by the exporters here and in the export process
    # Stable HTTP conventions (http.request.method, http.response.status_code, body sizes)
    # are what the collector's span metrics and the dashboards group by.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    providers = _setup.build(resolved)
    # One flush at exit for every signal, within OTEL_KIT_SHUTDOWN_TIMEOUT (the providers'
    # own exit hooks, off, ran one after another with no overall limit).
    atexit.register(shutdown)
    return Telemetry(resolved, providers, integrations.enable(chosen, resolved))


def _warn_if_different(current: Telemetry, resolved: Settings) -> None:
    if current.pid != os.getpid():
        _log.warning(
            "otel_kit: init() ran in process %s before this worker was forked; exporters do not survive "
            "a fork. Initialise in each worker instead (see README: forking servers).",
            current.pid,
        )
    elif resolved != current.settings:
        changed = {k: v for k, v in vars(resolved).items() if getattr(current.settings, k) != v}
        _log.warning("otel_kit: init() already ran; these new settings are ignored: %s", changed)


def shutdown() -> None:
    """Flush and stop all telemetry (also done at exit). Later spans are dropped.

    Gives up after OTEL_KIT_SHUTDOWN_TIMEOUT (5 s) in all, dropping what is not sent by
    then, so a dead collector never holds a stopping service.
    """
    with _lock:
        if _current is None or _current.providers is None:
            return
        if "logging" in _current.instrumented:
            from otel_kit.integrations import logging as logging_integration

            logging_integration.detach()  # records after this would reach a stopped provider
        timeout = _current.settings.shutdown_timeout
        unsent = _current.providers.shutdown(timeout)
    if unsent:
        signals = f"{', '.join(unsent[:-1])} and {unsent[-1]}" if len(unsent) > 1 else unsent[0]
        _log.warning(
            "otel_kit: %s not all sent within OTEL_KIT_SHUTDOWN_TIMEOUT=%gs; the rest is dropped "
            "(is the collector at OTEL_EXPORTER_OTLP_ENDPOINT up?)",
            signals,
            timeout,
        )


def message_context(properties: Any, name: str = "process") -> Any:
    """Process a RabbitMQ message fetched by hand (`basic_get`) inside its producer's trace.

    ```python
    method, properties, body = channel.basic_get("orders")
    with otel_kit.message_context(properties):
        handle(body)
    ```
    """
    from otel_kit.integrations.pika import message_context as pika_message_context

    return pika_message_context(properties, name)
