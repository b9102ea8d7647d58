"""Read-only guard and SQL text helpers: statement checks, name validation, literal quoting.

Statements are classified by DuckDB's own parser (``duckdb.extract_statements``), never by regular
expressions over the text. Only queries pass: ``SELECT`` (which DuckDB also uses for ``FROM``,
``VALUES``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE`` and read-only ``PRAGMA``\\ s) and ``EXPLAIN`` of
such a query. Table functions that change the session or the database file are refused too.
"""

from __future__ import annotations

import re

import duckdb

from lakehouse.exceptions import ReadOnlyError
from lakehouse.refs import validate_ref_name

# Table names become SQL identifiers and macro names: plain lower-case identifiers only.
TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Table functions a SELECT may call that change state (checkpointing, logging, profiling).
_STATEFUL_TABLE_FUNCTIONS = frozenset(
    {
        "checkpoint",
        "force_checkpoint",
        "enable_logging",
        "disable_logging",
        "truncate_duckdb_logs",
        "enable_profiling",
        "disable_profiling",
        "json_execute_serialized_sql",
    }
)

_WRITE_HINT = (
    "`aura sql` is read-only: only queries (SELECT, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, "
    "EXPLAIN) are allowed. Write to aura tables with the Lakehouse API or a Dagster asset."
)


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    if "\x00" in name:
        raise ValueError("identifiers cannot contain NUL characters")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """``value`` as a single-quoted SQL string literal (standard strings: no backslash escapes)."""
    if "\x00" in value:
        raise ValueError("string literals cannot contain NUL characters")
    return "'" + value.replace("'", "''") + "'"


def check_table_name(name: str) -> str:
    """Return ``name`` if it is a plain lower-case identifier, else raise ``ValueError``."""
    if not TABLE_NAME.match(name):
        raise ValueError(
            f"table name {name!r} is not a plain lower-case SQL identifier "
            "(letters, digits and underscores, starting with a letter or underscore)"
        )
    return name


def check_ref_name(name: str) -> str:
    """Return ``name`` if it is a well-formed branch or tag name, else raise :class:`RefError`.

    The one rule of :func:`lakehouse.refs.validate_ref_name`: any ref that can be created can be
    read. Ref names are compared as values, never spliced into SQL unquoted.
    """
    return validate_ref_name(name, user=False)


def check_read_only(query: str, parser: duckdb.DuckDBPyConnection | None = None) -> None:
    """Raise :class:`ReadOnlyError` unless every statement in ``query`` only reads.

    ``parser`` is the connection whose parser classifies the statements (default: DuckDB's
    module-level connection).

    Raises:
        ReadOnlyError: a statement would write, change settings or load code.
        duckdb.ParserException: the text is not valid SQL.
    """
    con = parser or duckdb.default_connection()
    statements = con.extract_statements(query)
    if not statements:
        raise ReadOnlyError("the query is empty; write a SELECT statement")
    for statement in statements:
        _check_statement(statement, con)


def _check_statement(statement: duckdb.Statement, con: duckdb.DuckDBPyConnection) -> None:
    kind = statement.type
    if kind == duckdb.StatementType.SELECT:
        _check_table_functions(statement.query)
        return
    if kind == duckdb.StatementType.EXPLAIN:
        inner = _explained_query(statement.query)
        inner_statements = con.extract_statements(inner) if inner else []
        if len(inner_statements) == 1 and inner_statements[0].type == duckdb.StatementType.SELECT:
            _check_table_functions(inner_statements[0].query)
            return
        raise ReadOnlyError(f"refused EXPLAIN of a statement that is not a query: {_WRITE_HINT}")
    raise ReadOnlyError(f"refused {kind.name} statement: {_WRITE_HINT}")


def _tokens(text: str) -> list[tuple[int, str]]:
    """``(position, text)`` of each token DuckDB's tokenizer finds, comments left out."""
    found = duckdb.tokenize(text)
    tokens = []
    for index, (position, kind) in enumerate(found):
        if kind == duckdb.token_type.comment:
            continue
        end = found[index + 1][0] if index + 1 < len(found) else len(text)
        tokens.append((position, text[position:end].strip()))
    return tokens


def _explained_query(text: str) -> str | None:
    """The statement under ``EXPLAIN [ANALYZE] [(options)]``."""
    tokens = _tokens(text)
    index = 0
    if index < len(tokens) and tokens[index][1].upper() == "EXPLAIN":
        index += 1
    while index < len(tokens) and tokens[index][1].upper() in ("ANALYZE", "ANALYSE"):
        index += 1
    if index < len(tokens) and tokens[index][1] == "(":
        depth = 0
        while index < len(tokens):
            depth += tokens[index][1] == "("
            depth -= tokens[index][1] == ")"
            index += 1
            if depth == 0:
                break
    return text[tokens[index][0] :] if index < len(tokens) else None


def _check_table_functions(select_sql: str) -> None:
    """Refuse queries that call a table function which changes state."""
    tokens = _tokens(select_sql)
    for (_, word), (_, following) in zip(tokens, tokens[1:], strict=False):
        if following == "(" and word.strip('"').lower() in _STATEFUL_TABLE_FUNCTIONS:
            raise ReadOnlyError(f"refused function {word}(): {_WRITE_HINT}")
