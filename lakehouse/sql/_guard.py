"""Read-only guard and SQL text helpers: statement checks, name validation, literal quoting.

Statements are classified by DuckDB's own parser (``duckdb.extract_statements``), never by regular
expressions over the text. Only queries pass: ``SELECT`` (which DuckDB also uses for ``FROM``,
``VALUES``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE`` and read-only ``PRAGMA``\\ s) and ``EXPLAIN`` of
such a query. Table functions that change the session or the database file are refused too.
"""

from __future__ import annotations

import json
import re

import duckdb

from lakehouse.exceptions import ReadOnlyError
from lakehouse.table.refs import validate_ref_name

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

    The one rule of :func:`lakehouse.table.refs.validate_ref_name`: any ref that can be created can
    be
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


# Table functions a tenant-scoped query may call besides the session's own macros: generators
# that read no file and no catalog.
_TENANT_TABLE_FUNCTIONS = frozenset(
    {"range", "generate_series", "unnest", "repeat", "json_each", "json_tree"}
)
# Scalar functions refused in a tenant-scoped query (they run or check SQL or files).
_TENANT_REFUSED_FUNCTIONS = frozenset(
    {"json_execute_serialized_sql", "iceberg_verify_equality_deletes", "query", "query_table"}
)
_TENANT_HINT = "a tenant-scoped session reads only the aura views and macros"


def check_tenant_query(
    query: str,
    con: duckdb.DuckDBPyConnection,
    *,
    relations: frozenset[str],
    macros: frozenset[str],
) -> None:
    """Raise :class:`ReadOnlyError` unless every statement reads only ``relations`` and ``macros``.

    The statements are parsed and serialized by DuckDB itself (``json_serialize_sql``) and the
    syntax tree is walked: every table reference must name one of ``relations`` (in schema
    ``main`` or ``aura``) or a CTE in scope, and every table function one of ``macros`` or a
    generator that reads nothing. So file readers (``read_parquet``, ``iceberg_scan``, ``glob``,
    ``read_text``, ...), replacement scans of file names, catalog functions and ``query()`` are
    refused. A statement DuckDB cannot serialize is refused too (fail closed).
    """
    for statement in con.extract_statements(query):
        text = statement.query
        if statement.type == duckdb.StatementType.EXPLAIN:
            text = _explained_query(text) or ""
        row = con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
        tree = json.loads(row[0]) if row else {"error": True}
        if tree.get("error"):
            raise ReadOnlyError(
                f"refused statement {_first_words(text)!r}: {_TENANT_HINT}, and this form "
                "of statement cannot be checked; write it as a plain SELECT"
            )
        _walk(tree["statements"], relations, macros, frozenset())


def _first_words(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _walk(
    node: object, relations: frozenset[str], macros: frozenset[str], ctes: frozenset[str]
) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, relations, macros, ctes)
        return
    if not isinstance(node, dict):
        return
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        ctes = ctes | {str(entry.get("key", "")).lower() for entry in cte_map.get("map", [])}
    kind = node.get("type")
    if kind == "BASE_TABLE":
        _check_relation(node, relations, ctes)
    elif kind == "TABLE_FUNCTION":
        _check_table_function(node.get("function") or {}, macros)
    elif kind == "SHOW_REF" and node.get("query") is None:
        # SHOW TABLES / SHOW DATABASES list names only; SHOW <name> would describe any object.
        if str(node.get("table_name", "")).strip('"').lower() not in ("tables", "all tables"):
            raise ReadOnlyError(f"refused SHOW {node.get('table_name')}: {_TENANT_HINT}")
    elif node.get("class") == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if name in _TENANT_REFUSED_FUNCTIONS or name in _STATEFUL_TABLE_FUNCTIONS:
            raise ReadOnlyError(f"refused function {name}(): {_TENANT_HINT}")
    for value in node.values():
        if isinstance(value, dict | list):
            _walk(value, relations, macros, ctes)


def _check_relation(
    node: dict[str, object], relations: frozenset[str], ctes: frozenset[str]
) -> None:
    name = str(node.get("table_name", ""))
    schema = str(node.get("schema_name", "")).lower()
    catalog = str(node.get("catalog_name", "")).lower()
    if node.get("at_clause") is not None:
        raise ReadOnlyError(f"refused {name} AT (...): {_TENANT_HINT}; use the _at macros")
    plain = not catalog and not schema
    if plain and name.lower() in ctes:
        return
    if catalog in ("", "memory") and schema in ("", "main", "aura") and name.lower() in relations:
        return
    qualified = ".".join(p for p in (catalog, schema, name) if p)
    raise ReadOnlyError(
        f"refused table {qualified!r}: {_TENANT_HINT} (files and other catalog objects are "
        "not readable)"
    )


def _check_table_function(function: dict[str, object], macros: frozenset[str]) -> None:
    name = str(function.get("function_name", ""))
    schema = str(function.get("schema", "")).lower()
    catalog = str(function.get("catalog", "")).lower()
    known = name.lower() in macros or name.lower() in _TENANT_TABLE_FUNCTIONS
    if known and catalog in ("", "memory") and schema in ("", "main", "aura"):
        return
    raise ReadOnlyError(
        f"refused table function {name}(): {_TENANT_HINT} (file readers, catalog functions and "
        "query() are not allowed with --tenant)"
    )
