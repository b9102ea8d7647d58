"""``aura sql``: read-only SQL over every aura table, at any time, snapshot, branch or tag."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from collections.abc import Iterable
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import click
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.exceptions import AuraError
from lakehouse.sql import DEFAULT_STATEMENT_TIMEOUT, SqlSession, connect

SHELL_HELP = """\
Statements end with ';'. Every aura table is a view; <table>_at(TIMESTAMP '...'),
<table>_at_snapshot(ID) and <table>_at_ref('NAME') time-travel inside a query.
Metadata: aura_snapshots, aura_refs, aura_history, aura_views.
Commands: .tables  .help  .exit"""


@click.command("sql")
@click.argument("query", required=False)
@click.option(
    "--as-of",
    "as_of",
    metavar="TIME",
    help="Show every table as of this ISO time (UTC unless it has an offset).",
)
@click.option("--ref", metavar="NAME", help="Show every table at this branch or tag.")
@click.option(
    "--tenant",
    metavar="T",
    help="Every table shows only tenant T's rows (dead letters and checkpoints none).",
)
@click.option(
    "--snapshot",
    "snapshots",
    metavar="TABLE=ID",
    multiple=True,
    help="Pin one table to a snapshot id (repeatable; wins over --as-of/--ref).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="How to print the result.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE.parquet",
    help="Write the result to a Parquet file instead of printing it.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_STATEMENT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Stop a statement that runs longer than this (0: no limit).",
)
def sql(
    query: str | None,
    as_of: str | None,
    ref: str | None,
    snapshots: tuple[str, ...],
    tenant: str | None,
    fmt: str,
    output: Path | None,
    timeout: float,
) -> None:
    """Run a read-only SQL QUERY over the aura tables (an interactive shell without QUERY).

    QUERY may hold several statements separated by ';': each result is printed in turn.
    Only files inside the warehouse can be read.

    \b
    Examples:
      aura sql "SELECT chosen_model, count(*) FROM routing_decisions GROUP BY 1"
      aura sql --as-of "2026-11-20 14:05" "SELECT count(*) FROM routing_decisions"
      aura sql "SELECT count(*) FROM routing_decisions_at_ref('exp-1')"
    """
    try:
        session = connect(
            as_of=as_of,
            ref=ref,
            snapshots=_pins(snapshots),
            tenant=tenant,
            statement_timeout=timeout,
        )
    except AuraError as exc:
        raise click.ClickException(str(exc)) from None
    with session:
        if query is None:
            _shell(session, fmt)
            return
        try:
            statements = session.statements(query)
            if output is not None and len(statements) > 1:
                raise click.ClickException(
                    f"--output takes the result of one statement; the query has {len(statements)}"
                )
            for index, statement in enumerate(statements):
                result = session.arrow(statement)
                if output is not None:
                    _write(result, output)
                    click.echo(f"wrote {result.num_rows} row(s) to {output}", err=True)
                else:
                    if index:
                        click.echo("")
                    _print(result, fmt)
        except (AuraError, duckdb.Error) as exc:
            raise click.ClickException(_one_line(exc)) from None


def _write(result: pa.Table, output: Path) -> None:
    """Write ``result`` to ``output`` as Parquet; a path that cannot be written is one line."""
    try:
        pq.write_table(result, output)
    except OSError as exc:
        if output.is_file():
            output.unlink(missing_ok=True)  # no partial file left behind
        reason = exc.strerror or _one_line(exc)
        if not output.parent.is_dir():
            reason = f"the directory {output.parent} does not exist"
        raise click.ClickException(
            f"cannot write {output}: {reason}; choose a --output FILE in an existing, writable "
            "directory with free space"
        ) from None


def _one_line(exc: Exception) -> str:
    """An error as one line; DuckDB's refusal of a file outside the warehouse says why."""
    text = " ".join(str(exc).split())
    if isinstance(exc, duckdb.PermissionException):
        return (
            f"{text} (aura sql reads only the aura tables in the warehouse; files elsewhere are "
            "not readable)"
        )
    return text


def _pins(values: Iterable[str]) -> dict[str, int]:
    pins = {}
    for value in values:
        table, sep, snapshot_id = value.partition("=")
        if not sep or not snapshot_id.strip().lstrip("-").isdigit():
            raise click.BadParameter(f"{value!r} is not TABLE=SNAPSHOT_ID", param_hint="--snapshot")
        pins[table.strip()] = int(snapshot_id)
    return pins


def _shell(session: SqlSession, fmt: str) -> None:
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        click.echo(f"aura sql ({session.description}); .help for help, .exit to leave")
    buffer: list[str] = []
    while True:
        try:
            line = input("aura> " if not buffer else "  ... ")
        except EOFError:
            break
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            if stripped in (".exit", ".quit"):
                break
            if stripped == ".tables":
                click.echo("\n".join(sorted(session.views)))
            else:
                click.echo(SHELL_HELP)
            continue
        buffer.append(line)
        if not stripped.endswith(";"):
            continue
        text, buffer = "\n".join(buffer), []
        try:
            for statement in session.statements(text):
                _print(session.arrow(statement), fmt)
        except (AuraError, duckdb.Error) as exc:
            click.echo(f"Error: {_one_line(exc)}", err=True)


def _print(result: pa.Table, fmt: str) -> None:
    names = result.column_names
    records = result.to_pylist()
    if fmt == "json":
        click.echo(json.dumps(records, default=_json_value, indent=1))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for record in records:
            writer.writerow(["" if record[n] is None else _text(record[n]) for n in names])
        click.echo(buffer.getvalue(), nl=False)
    else:
        _print_aligned(names, records)


def _print_aligned(names: list[str], records: list[dict[str, object]]) -> None:
    cells = [[_text(record[n]) for n in names] for record in records]
    numeric = [
        all(
            isinstance(r[n], int | float | Decimal) and not isinstance(r[n], bool)
            for r in records
            if r[n] is not None
        )
        and any(r[n] is not None for r in records)
        for n in names
    ]
    widths = [max([len(n)] + [len(row[i]) for row in cells]) for i, n in enumerate(names)]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    click.echo(line(names))
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo(line(row))
    click.echo(f"({len(records)} row{'s' if len(records) != 1 else ''})", err=True)


def _text(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, default=_json_value)
    return str(value)


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
