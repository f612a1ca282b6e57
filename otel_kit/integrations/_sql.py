"""SQL statements read as PostgreSQL's lexer reads them: named by operation and table, literals scrubbed.

Contrib's psycopg2 instrumentation names a span by the statement's first word and keeps its
literals, hence this lexer. Kept apart from the integration so that its rules are read and
tested alone (tests/unit/test_sql_naming.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

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
MAX_CACHED_LENGTH = 4096


def _cached_when_short(work: Callable[[str], Any]) -> Callable[[str], Any]:
    """`work` behind an LRU cache of 1,024 statements, each up to MAX_CACHED_LENGTH long."""
    cached = functools.lru_cache(maxsize=1024)(work)

    @functools.wraps(work)
    def call(statement: str) -> Any:
        return cached(statement) if len(statement) <= MAX_CACHED_LENGTH else work(statement)

    return call


@_cached_when_short
def summarize(statement: str) -> tuple[str, str | None]:
    """`("INSERT", "orders")` for `INSERT INTO orders ...`; table None when there is none to name.

    A statement with CTEs (`WITH recent AS (SELECT ... FROM orders) SELECT ... FROM recent`)
    is named by its main statement: for a SELECT, the first table it or its CTEs read.
    """
    # Read without literals and comments: a FROM or a parenthesis in them is not the statement's.
    # A long one (a bulk insert, not cached) is named from its start: lexing all of it took ms.
    head = statement[:MAX_CACHED_LENGTH]
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
