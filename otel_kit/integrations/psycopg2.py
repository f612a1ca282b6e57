"""PostgreSQL (psycopg2): one client span per statement, named by operation and table, no values.

Built on contrib's Psycopg2Instrumentor, with its gaps closed (docs/pitfalls): spans are
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
import re
import time
from collections.abc import Callable
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
from otel_kit._settings import Settings
from otel_kit.integrations._recorder import Recorder

_IDENTIFIER = r'((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)'
_TABLE_PATTERNS = {
    "SELECT": re.compile(rf"\bFROM\s+(?:ONLY\s+)?{_IDENTIFIER}", re.IGNORECASE),
    "INSERT": re.compile(rf"^\s*INSERT\s+INTO\s+{_IDENTIFIER}", re.IGNORECASE),
    "UPDATE": re.compile(rf"^\s*UPDATE\s+(?:ONLY\s+)?{_IDENTIFIER}", re.IGNORECASE),
    "DELETE": re.compile(rf"^\s*DELETE\s+FROM\s+(?:ONLY\s+)?{_IDENTIFIER}", re.IGNORECASE),
    "COPY": re.compile(rf"^\s*COPY\s+{_IDENTIFIER}", re.IGNORECASE),
}
# The statement's tokens that can hold a quote or a digit, read left to right as PostgreSQL's
# lexer reads them: a quote inside a comment or a quoted name is not a literal's, and one
# misread there paired every later quote wrongly, leaking the literals in between. Literals:
# every string form ('it''s', E'it\'s', $tag$...$tag$; B'', X'' and U&'' through their quotes)
# and every number form (0x1F, 1_000, .5, 2.5e-3) that is not part of a name or a $1. The
# lookahead first skips the positions where no token can start: 1.5x faster on a bulk insert.
_TOKENS = re.compile(
    r"""
    (?= [-/"eE'$\d.] ) (?:
      (?P<comment> --[^\n]* | /\*.*?\*/ )
    | (?P<name> "(?:[^"]|"")*" )
    | (?<![\w$]) [eE] '(?:[^'\\]|\\.|'')*'
    | '(?:[^']|'')*'
    | (?<![\w$]) \$ (?P<tag> (?:[^\W\d]\w*)? ) \$ .*? \$ (?P=tag) \$
    | (?<![\w$.]) -? (?: 0[xX][\da-fA-F_]+ | 0[oO][0-7_]+ | 0[bB][01_]+
                       | (?: \d[\d_]* (?:\.[\d_]*)? | \.\d[\d_]* ) (?:[eE][-+]?\d+)? ) (?!\w)
    )
    """,
    re.VERBOSE | re.DOTALL,
)
# The words a CTE list's main statement starts with.
_MAIN_STATEMENTS = frozenset(("SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"))
_FIRST_WORD = re.compile(r"\s*(\w+)")
# Longer statements (bulk inserts by execute_values, SQL with its data inline) are worked out
# each time and never cached: the caches hold up to 1,024 statements, which must stay small.
_MAX_CACHED_LENGTH = 4096
_log = logging.getLogger("otel_kit")


def _cached_when_short(work: Callable[[str], Any]) -> Callable[[str], Any]:
    """`work` behind an LRU cache of 1,024 statements, each up to _MAX_CACHED_LENGTH long."""
    cached = functools.lru_cache(maxsize=1024)(work)

    @functools.wraps(work)
    def call(statement: str) -> Any:
        return cached(statement) if len(statement) <= _MAX_CACHED_LENGTH else work(statement)

    return call


@_cached_when_short
def summarize(statement: str) -> tuple[str, str | None]:
    """`("INSERT", "orders")` for `INSERT INTO orders ...`; table None when there is none to name.

    A statement with CTEs (`WITH recent AS (SELECT ... FROM orders) SELECT ... FROM recent`)
    is named by its main statement: for a SELECT, the first table it or its CTEs read.
    """
    # Read without literals and comments: a FROM or a parenthesis in them is not the statement's.
    # A long one (a bulk insert, not cached) is named from its start: lexing all of it took ms.
    head = statement[:_MAX_CACHED_LENGTH]
    text = _TOKENS.sub(lambda token: " " if token["comment"] else token["name"] or "?", head)
    text = text.lstrip("( \t\r\n")  # (SELECT ...) UNION (SELECT ...)
    words = text.split(maxsplit=1)
    if not words:
        return "", None
    operation, main = words[0].upper(), text
    if operation == "WITH":
        operation, main = _after_ctes(text) or (operation, text)
    pattern = _TABLE_PATTERNS.get(operation)
    # The SELECT pattern finds the first FROM anywhere; the others are anchored to the start.
    match = pattern.search(text if operation == "SELECT" else main) if pattern else None
    return operation, (match.group(1).replace('"', "") if match else None)


def _after_ctes(text: str) -> tuple[str, str] | None:
    """The operation and text of the main statement after `WITH name [(columns)] AS (...), ...`."""
    depth = 0
    for position, character in enumerate(text):
        if character == "(":
            depth += 1
        elif character == ")":
            depth -= 1
            word = _FIRST_WORD.match(text, position + 1) if depth == 0 else None
            if word and word[1].upper() in _MAIN_STATEMENTS:
                return word[1].upper(), text[word.start(1) :]
    return None


@_cached_when_short
def scrub(statement: str) -> str:
    """The statement with every literal value replaced by `?` (placeholders, names and comments kept)."""
    return _TOKENS.sub(lambda token: token["comment"] or token["name"] or "?", statement)


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
        if isinstance(statement, (str, bytes)) and len(statement) <= _MAX_CACHED_LENGTH:
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
