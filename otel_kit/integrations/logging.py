"""stdlib logging: trace_id / span_id on every record, and records exported over OTLP.

Exporting puts contrib's OTLP handler on the root logger. In a process that has not
configured logging (a FastAPI app under uvicorn configures uvicorn's loggers only), Python
printed warnings and errors to stderr through `logging.lastResort`, used only when no
handler is found; with the OTLP handler found, the app's errors and the kit's own warnings
("is the collector up?") went to the collector alone, unseen when it is down. So the kit
keeps Python's last resort for such a process (`_LastResort`) until the app configures
logging itself.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Callable
from typing import Any

from opentelemetry.instrumentation.logging import LoggingInstrumentor

from otel_kit._compat import logging_handler, logging_handler_emitting
from otel_kit._config.settings import Settings


def instrument(settings: Settings) -> None:
    unconfigured = not logging.getLogger().handlers
    # inject_trace_context adds otelTraceID / otelSpanID / otelServiceName to every record
    # without touching the app's own log format; the handler sends records to the global
    # LoggerProvider (and so over OTLP) unless logs are off.
    LoggingInstrumentor().instrument(
        inject_trace_context=True,
        enable_log_auto_instrumentation=settings.logs_exporter != "none",
    )
    otlp = logging_handler()
    if otlp is None:
        return
    _skip_records_logged_while_exporting(otlp)
    if unconfigured:
        _LastResort.install(otlp)


def _skip_records_logged_while_exporting(otlp: logging.Handler) -> None:
    """Leave a record logged from inside the OTLP handler to the other handlers.

    Such a record (the SDK's or the kit's warning about the export itself, e.g. a full
    queue) cannot be exported: contrib's handler refuses it and prints "LoggingHandler.emit
    detected recursive logging, skipping to prevent deadlock." instead, each time.
    """
    emitting = logging_handler_emitting(otlp)
    if emitting is not None:
        otlp.addFilter(lambda record: not emitting.get())


def detach() -> None:
    """Take the OTLP handler, and the last resort kept with it, off the root logger (at shutdown).

    The stopped SDK would answer each record it is handed with a log record of its own
    ("Shutdown called, ignoring Log.", then "detected recursive logging"), printed at exit.
    """
    root = logging.getLogger()
    otlp = logging_handler()
    if otlp is not None:
        # logging.shutdown() at exit flushes every handler ever made: this one would flush the
        # stopped provider from a new thread, which some Python 3.12 releases refuse at exit
        # (3.12.1: a traceback at every exit). The attribute is logging's own opt-out.
        otlp.flushOnClose = False  # type: ignore[attr-defined]
    for handler in list(root.handlers):
        if isinstance(handler, _LastResort):
            handler.retired = True
        if handler is otlp or isinstance(handler, _LastResort):
            root.removeHandler(handler)


class _LastResort(logging.Handler):
    """Python's `logging.lastResort` for records no handler but the OTLP one takes.

    Called for what reaches the root logger; hands a record to `logging.lastResort` (stderr,
    warnings and up, or nothing if the app set it to None) unless a handler other than the
    OTLP one would have taken it. Removed when the app configures logging (basicConfig,
    dictConfig, fileConfig), and put back if that leaves the root logger without handlers.
    """

    def __init__(self, otlp: logging.Handler) -> None:
        super().__init__()
        self._otlp = otlp
        self.retired = False  # detached at shutdown: not put back by a later basicConfig

    @classmethod
    def install(cls, otlp: logging.Handler) -> None:
        root = logging.getLogger()
        handler = cls(otlp)
        root.addHandler(handler)

        def keeping_last_resort(configure: Callable[..., Any]) -> Callable[..., Any]:
            def configure_logging(*args: Any, **kwargs: Any) -> Any:
                root.removeHandler(handler)  # or basicConfig, seeing a handler, does nothing
                try:
                    return configure(*args, **kwargs)
                finally:
                    if not handler.retired and not [h for h in root.handlers if h is not otlp]:
                        root.addHandler(handler)

            return configure_logging

        # Wrapped after contrib, which takes its own handler off the same way around them.
        logging.basicConfig = keeping_last_resort(logging.basicConfig)
        logging.config.dictConfig = keeping_last_resort(logging.config.dictConfig)
        logging.config.fileConfig = keeping_last_resort(logging.config.fileConfig)

    def handle(self, record: logging.LogRecord) -> bool:
        last_resort = logging.lastResort
        if last_resort is None or record.levelno < last_resort.level or self._handled_elsewhere(record):
            return False
        return last_resort.handle(record)

    def _handled_elsewhere(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(h is not self and h is not self._otlp for h in logger.handlers):
                return True
            logger = logger.parent if logger.propagate else None
        return False

    def emit(self, record: logging.LogRecord) -> None:  # handle() does the work
        pass
