"""PostgreSQL (psycopg2): one client span per statement, named by operation and table, no values.

Built on contrib's Psycopg2Instrumentor, with its gaps closed: spans are
named `INSERT orders` rather than `INSERT` so span metrics can tell queries apart; literals
in the statement text are replaced by `?`; cursors made with
`conn.cursor(cursor_factory=RealDictCursor)` are traced too; and statements given as bytes
(what `execute_values` and `execute_batch` send) or as a bare `sql.SQL` are read as text
(contrib's psycopg2 tracer passes them through, and naming them raised). sqlcommenter stays
off: its per-query comment defeats statement caching and floods pg_stat_statements. What
contrib builds per connect() (an integration, traced classes) is built once here.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

import psycopg2
import psycopg2.extensions
import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.psycopg2 import DatabaseApiIntegration, Psycopg2Instrumentor
from opentelemetry.instrumentation.psycopg2.version import __version__
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, StatusCode
from psycopg2.sql import Composable

from otel_kit._compat import psycopg2_cursor_tracer
from otel_kit._config.settings import Settings
from otel_kit.integrations._recorder import Recorder
from otel_kit.integrations._sql import MAX_CACHED_LENGTH, scrub, summarize

_log = logging.getLogger("otel_kit")


class _CursorTracer(psycopg2_cursor_tracer()):  # type: ignore[misc]
    """Contrib's cursor tracer, with each statement's span name and attributes worked out once.

    Contrib builds them on every execute (statement text, semconv lookups, a dozen
    attribute calls on the live span); a traced SELECT cost 389k instructions here, 320k
    with them reused (bare 37k). They depend only on the statement and the connection's
    database, so the first execute runs contrib's own code into a `Recorder` and later
    ones reuse the result.
    """

    def __init__(self, integration: DatabaseApiIntegration) -> None:
        super().__init__(integration)
        self._details: dict[str | bytes, tuple[str, dict[str, Any], str]] = {}

    def traced_execution(self, cursor: Any, query_method: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_instrumentation_enabled():
            return query_method(*args, **kwargs)
        statement = args[0] if args else None
        details = None
        # Composed statements go contrib's way, as do long ones (not cached).
        if isinstance(statement, (str, bytes)) and len(statement) <= MAX_CACHED_LENGTH:
            try:
                details = self._details.get(statement) or self._remember(cursor, args)
            except Exception:  # the statement runs all the same, untraced
                _log.debug("otel_kit: no span for a psycopg2 statement", exc_info=True)
                return query_method(*args, **kwargs)
        if details is None:
            return super().traced_execution(cursor, query_method, *args, **kwargs)
        name, attributes, operation_name = details
        with self.tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
            started, error = time.perf_counter(), None
            try:
                return query_method(*args, **kwargs)
            except Exception as exc:
                error = exc
                raise
            finally:
                self.record_metrics(cursor, operation_name, started, error)

    def _remember(self, cursor: Any, args: tuple) -> tuple[str, dict[str, Any], str] | None:
        """Contrib's name and attributes for a str or bytes statement; None past the limit."""
        if len(self._details) >= _MAX_STATEMENTS:
            return None
        operation_name = self.get_operation_name(cursor, args)
        integration = self.integration
        name = operation_name or integration.database or integration.name
        recorder = Recorder()
        self.populate_span(recorder, cursor, *args)
        details = self._details[args[0]] = (name, recorder.attributes, operation_name)
        return details

    def _text(self, cursor: Any, args: Any) -> str:
        """The statement as text. Contrib's psycopg2 tracer renders `sql.Composed` only, and
        passes bytes (what `execute_values` and `execute_batch` send) and a bare `sql.SQL` through."""
        statement = super().get_statement(cursor, args)
        if isinstance(statement, Composable):
            return statement.as_string(cursor)
        if isinstance(statement, bytes):
            return statement.decode("utf-8", "replace")
        return statement if isinstance(statement, str) else ""

    def get_operation_name(self, cursor: Any, args: Any) -> str:
        statement = self._text(cursor, args)
        operation, table = summarize(statement) if statement else ("", None)
        return f"{operation} {table}" if table else operation

    def get_statement(self, cursor: Any, args: Any) -> str:
        statement = self._text(cursor, args)
        return scrub(statement) if statement else statement

    def populate_span(self, span: Any, cursor: Any, *args: Any) -> None:
        super().populate_span(span, cursor, *args)
        if not span.is_recording():
            return
        statement = self._text(cursor, args)
        operation, table = summarize(statement) if statement else ("", None)
        if table:
            span.set_attributes({"db.operation.name": operation, "db.collection.name": table})
        elif operation:
            span.set_attribute("db.operation.name", operation)


_MAX_STATEMENTS = 1024  # per database; past it (SQL built with literals) statements go uncached


# Contrib makes a DatabaseApiIntegration (tracer, connection attributes) per connect(); our
# traced classes are made once per base class and find it through the connection, because a
# class per connect() cost ~0.4 ms of CPU per connection here (services that connect per
# message pay it on every message).
_TRACER_ATTRIBUTE = "_otel_kit_cursor_tracer"


@functools.cache
def _traced_cursor_class(base: type) -> type:
    if getattr(base, "_otel_kit_traced", False):
        return base

    class TracedCursor(base):  # type: ignore[misc, valid-type]
        _otel_kit_traced = True

        def execute(self, *args: Any, **kwargs: Any) -> Any:
            return _traced(self, super().execute, args, kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            return _traced(self, super().executemany, args, kwargs)

        def callproc(self, *args: Any, **kwargs: Any) -> Any:
            return _traced(self, super().callproc, args, kwargs)

    TracedCursor.__name__ = TracedCursor.__qualname__ = f"Traced{base.__name__}"
    return TracedCursor


def _traced(cursor: Any, method: Any, args: tuple, kwargs: dict) -> Any:
    tracer = getattr(cursor.connection, _TRACER_ATTRIBUTE, None)
    if tracer is None:  # a connection made before instrumenting, or by hand from the class
        return method(*args, **kwargs)
    return tracer.traced_execution(cursor, method, *args, **kwargs)


@functools.cache
def _traced_connection_class(base: type) -> type:
    class TracedConnection(base):  # type: ignore[misc, valid-type]
        """Wraps a per-call `cursor_factory`, which would otherwise replace the traced one."""

        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            if len(args) >= 2 and args[1] is not None:
                args = (args[0], _traced_cursor_class(args[1]), *args[2:])
            elif kwargs.get("cursor_factory") is not None:
                kwargs["cursor_factory"] = _traced_cursor_class(kwargs["cursor_factory"])
            return super().cursor(*args, **kwargs)

    return TracedConnection


# Connection attributes (database, host, port, user) -> its integration and cursor tracer.
# Contrib builds an integration per connect() (a tracer, semconv lookups, attribute parsing:
# ~0.15 ms here); connections to the same database share one. Bounded: past the limit a
# connection gets its own, as in contrib.
_TRACERS: dict[tuple, _CursorTracer] = {}
_MAX_TRACERS = 64


def _connect(wrapped: Any, _module: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    connection_base = kwargs.pop("connection_factory", None) or psycopg2.extensions.connection
    kwargs["connection_factory"] = _traced_connection_class(connection_base)
    cursor_base = kwargs.pop("cursor_factory", None) or psycopg2.extensions.cursor
    kwargs["cursor_factory"] = _traced_cursor_class(cursor_base)
    started = time.time_ns()
    try:
        connection = wrapped(*args, **kwargs)
    except psycopg2.Error as error:
        if is_instrumentation_enabled():
            _record_failed_connect(args, kwargs, error, started)
        raise
    info = connection.info
    key = (info.dbname, info.host, info.port, info.user)
    tracer = _TRACERS.get(key)
    if tracer is None:
        integration = DatabaseApiIntegration(
            __name__,
            Psycopg2Instrumentor._DATABASE_SYSTEM,
            connection_attributes=Psycopg2Instrumentor._CONNECTION_ATTRIBUTES,
            version=__version__,
            enable_commenter=False,
            capture_parameters=False,
            connect_module=psycopg2,
        )
        integration.get_connection_attributes(connection)
        tracer = _CursorTracer(integration)
        if len(_TRACERS) < _MAX_TRACERS:
            _TRACERS[key] = tracer
    setattr(connection, _TRACER_ATTRIBUTE, tracer)
    return connection


def _record_failed_connect(args: tuple, kwargs: dict[str, Any], error: Exception, started: int) -> None:
    """An error span for a connect() that failed: contrib records nothing, and a service that
    catches the error (and logs it) leaves the order's trace without its cause."""
    try:
        dsn = psycopg2.extensions.parse_dsn(args[0] if args else kwargs.get("dsn") or "")
    except psycopg2.Error:
        dsn = {}
    factories = ("dsn", "connection_factory", "cursor_factory")
    params = {**dsn, **{k: v for k, v in kwargs.items() if k not in factories}}
    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
    port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
    attributes: dict[str, Any] = {
        "db.system": "postgresql",  # the names contrib's statement spans carry
        "net.peer.name": host,
        "error.type": f"{type(error).__module__}.{type(error).__qualname__}",
    }
    if port.isdigit():
        attributes["net.peer.port"] = int(port)
    database = params.get("dbname") or params.get("database")
    if database:
        attributes["db.name"] = str(database)
    span = trace.get_tracer(__name__, __version__).start_span(
        "connect", kind=SpanKind.CLIENT, start_time=started, attributes=attributes
    )
    span.record_exception(error)
    span.set_status(StatusCode.ERROR, str(error).strip().splitlines()[0] if str(error).strip() else None)
    span.end()


class _Instrumentor(Psycopg2Instrumentor):
    def _instrument(self, **kwargs: Any) -> None:
        # Undone by Psycopg2Instrumentor's own _uninstrument (dbapi.unwrap_connect).
        wrapt.wrap_function_wrapper(psycopg2, "connect", _connect)


def instrument(settings: Settings) -> None:
    _Instrumentor().instrument()
